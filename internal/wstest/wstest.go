// Package wstest is a minimal RFC 6455 WebSocket client and server for
// sessiongate's tests: enough framing to open a WebSocket through the
// proxy, exchange messages, send frames in pieces, and read the close
// frames the proxy sends. It is not a WebSocket library: no extensions, no
// UTF-8 checks, no automatic answers to pings or closes (tests decide).
package wstest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/netutil"
)

// Opcodes.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Conn is one end of a WebSocket.
type Conn struct {
	net.Conn
	br     *bufio.Reader
	client bool // a client masks what it sends
}

// Frame is one frame as read.
type Frame struct {
	Fin     bool
	Op      byte
	Masked  bool
	Payload []byte // unmasked
}

// CloseCode returns the code and reason of a close frame's payload (1005,
// "" for an empty one).
func (f Frame) CloseCode() (int, string) {
	if len(f.Payload) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
}

// Dial opens a WebSocket to a ws:// or http:// URL with the extra request
// headers h. The response is returned whatever its status; err is set when
// it is not 101.
func Dial(ctx context.Context, rawURL string, h http.Header) (*Conn, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		return nil, nil, errors.New("wstest: wss is not supported")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, err
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	for name, vs := range h {
		req.Header[name] = vs
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", key)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, resp, fmt.Errorf("wstest: status %d", resp.StatusCode)
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != accept(key) {
		c.Close()
		return nil, resp, errors.New("wstest: wrong Sec-WebSocket-Accept")
	}
	return &Conn{Conn: c, br: br, client: true}, resp, nil
}

func accept(key string) string {
	s := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(s[:])
}

// Upgrade answers a WebSocket handshake with 101 and returns the server's
// end. respHeader is added to the 101.
func Upgrade(w http.ResponseWriter, r *http.Request, respHeader http.Header) (*Conn, error) {
	if !netutil.HeaderHasToken(r.Header, "Upgrade", "websocket") || !netutil.HeaderHasToken(r.Header, "Connection", "upgrade") {
		http.Error(w, "not a websocket handshake", http.StatusBadRequest)
		return nil, errors.New("wstest: not a websocket handshake")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + accept(key) + "\r\n")
	for name, vs := range respHeader {
		for _, v := range vs {
			b.WriteString(name + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	if _, err := brw.WriteString(b.String()); err != nil {
		c.Close()
		return nil, err
	}
	if err := brw.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	return &Conn{Conn: c, br: brw.Reader}, nil
}

// Encode returns one frame's bytes; mask masks it with a random key.
func Encode(fin bool, op byte, payload []byte, mask bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !mask {
		return append(out, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

// Read reads raw bytes (what the handshake left buffered first).
func (c *Conn) Read(p []byte) (int, error) { return c.br.Read(p) }

// WriteFrame writes one frame (masked from a client).
func (c *Conn) WriteFrame(fin bool, op byte, payload []byte) error {
	_, err := c.Conn.Write(Encode(fin, op, payload, c.client))
	return err
}

// WriteMessage writes one unfragmented message.
func (c *Conn) WriteMessage(op byte, payload []byte) error { return c.WriteFrame(true, op, payload) }

// WriteClose writes a close frame with code and reason.
func (c *Conn) WriteClose(code int, reason string) error {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return c.WriteFrame(true, OpClose, append(p, reason...))
}

// WriteRaw writes bytes as they are (part of a frame, for instance).
func (c *Conn) WriteRaw(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

// ReadFrame reads one frame.
func (c *Conn) ReadFrame() (Frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Fin: h[0]&0x80 != 0, Op: h[0] & 0x0f, Masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(c.br, e[:]); err != nil {
			return Frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(c.br, e[:]); err != nil {
			return Frame{}, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 64<<20 {
		return Frame{}, fmt.Errorf("wstest: frame of %d bytes", n)
	}
	var key [4]byte
	if f.Masked {
		if _, err := io.ReadFull(c.br, key[:]); err != nil {
			return Frame{}, err
		}
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.Payload); err != nil {
		return Frame{}, err
	}
	if f.Masked {
		for i := range f.Payload {
			f.Payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// ReadUntilClose reads frames until a close frame (returned), an error, or
// the deadline; the other frames are returned too, in order.
func (c *Conn) ReadUntilClose(deadline time.Time) (closeFrame *Frame, others []Frame, err error) {
	_ = c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return nil, others, err
		}
		if f.Op == OpClose {
			return &f, others, nil
		}
		others = append(others, f)
	}
}

// WaitEOF reads until the peer closes the TCP connection (nil) or the
// deadline (an error); frames read meanwhile are dropped.
func (c *Conn) WaitEOF(deadline time.Time) error {
	_ = c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	_, err := io.Copy(io.Discard, c.br)
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return nil // reset by peer: closed too
}

// MustDial opens a WebSocket to rawURL (ws://…), sending "Authorization:
// Bearer token" when token is set, and closes it when the test ends. A
// failed handshake fails tb with the answer's status.
func MustDial(tb testing.TB, rawURL, token string) *Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := Dial(ctx, rawURL, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("WebSocket %s: %v (status %d)", rawURL, err, status)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Echo sends msg as a text message and fails tb unless the same text
// comes back within 5 s (the upstream echoes).
func Echo(tb testing.TB, c *Conn, msg string) {
	tb.Helper()
	if err := c.WriteMessage(OpText, []byte(msg)); err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := c.ReadFrame()
	_ = c.SetReadDeadline(time.Time{})
	if err != nil || f.Op != OpText || string(f.Payload) != msg {
		tb.Fatalf("echo through the proxy: %+v %v", f, err)
	}
}
