package proxy

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Closing a WebSocket the proxy passes through
// (docs/sessions.md#long-lived-connections).
//
// After the 101, httputil.ReverseProxy copies bytes both ways with two
// goroutines: upstream→client into the hijacked client connection, and
// client→upstream into the upstream connection. The proxy wraps both
// destinations in a frameWriter, which follows the RFC 6455 §5.2 frame
// boundaries of the bytes going through it (header length from the second
// byte and the extended length, payload skipped by count: O(1) per write,
// nothing buffered or copied). To close, each side gets a close frame:
//
//   - toward the client, a server frame: unmasked, FIN, opcode 8, code and
//     reason (4401 session-revoked, 4408 max-lifetime, 1001 shutdown);
//   - toward the upstream, the same code and reason as a client frame,
//     masked with a random key, so the application learns why its
//     connection ended instead of seeing a dropped TCP connection.
//
// A close frame is only ever written between two frames: if the copier is
// in the middle of a frame, the frame finishes first (the write that ends
// it is split at the boundary, the close frame goes after it, and the rest
// is dropped); if the direction is idle, the closer writes the frame
// itself. Writes are serialized by a one-token channel, so the copier and
// the closer never interleave bytes. After its close frame a direction
// drops everything (RFC 6455 §5.5.1: no data frame after a close) but still
// scans it: the client's own close frame, answering ours, is the signal
// that it has read ours, and both TCP connections are closed then. A
// direction that does not reach a boundary, a peer that does not answer,
// or a stream that is not valid framing is cut after a grace period
// (ConnectionsConfig.CloseGrace) whatever its state. Every wait is bounded
// by that grace period: the close frame toward the client is written at
// once when the direction is idle, or as soon as the frame in flight ends.
//
// The 101 response head itself goes through the client-side writer (the
// hijacked connection's bufio.Writer writes into it), so a close frame can
// never precede or split the head.

// WebSocket close codes the proxy sends (RFC 6455 §7.4; 4000–4999 are for
// private use).
const (
	// CloseCodeSessionRevoked closes a WebSocket whose session was revoked
	// (or found no longer active); the reason is "session-revoked".
	CloseCodeSessionRevoked = 4401
	// CloseCodeMaxLifetime closes a WebSocket open for
	// connections.max_lifetime; the reason is "max-lifetime".
	CloseCodeMaxLifetime = 4408
	// CloseCodeGoingAway closes WebSockets at shutdown; the reason is
	// "shutdown".
	CloseCodeGoingAway = 1001
)

// frameScanner follows frame boundaries in one direction of a WebSocket.
type frameScanner struct {
	head bool // still in the HTTP response head (the 101), not frames yet
	crlf int  // how much of "\r\n\r\n" ends what was seen of the head

	hdr    [14]byte
	n      int    // header bytes gathered
	need   int    // header length once n >= 2
	left   uint64 // payload bytes left in the current frame
	op     byte   // opcode of the current frame
	bad    bool   // not valid framing: boundaries are lost
	closes int    // complete close frames seen
}

// atBoundary reports whether the next byte starts a frame.
func (s *frameScanner) atBoundary() bool { return !s.bad && !s.head && s.n == 0 && s.left == 0 }

// consume follows p. With stop, it stops at the first frame boundary and
// returns its offset in p (0 when already at one, len(p) when p ends a
// frame); -1 means p holds no boundary (all of it was followed).
func (s *frameScanner) consume(p []byte, stop bool) int {
	i := 0
	for i < len(p) {
		if stop && s.atBoundary() {
			return i
		}
		switch {
		case s.bad:
			return -1
		case s.head:
			c := p[i]
			i++
			switch {
			case c == "\r\n\r\n"[s.crlf]:
				s.crlf++
			case c == '\r':
				s.crlf = 1
			default:
				s.crlf = 0
			}
			if s.crlf == 4 {
				s.head = false
			}
		case s.left > 0:
			k := uint64(len(p) - i)
			if k > s.left {
				k = s.left
			}
			i += int(k)
			s.left -= k
			if s.left == 0 {
				s.frameDone()
			}
		default:
			s.hdr[s.n] = p[i]
			s.n++
			i++
			if s.n == 2 {
				s.need = 2
				switch s.hdr[1] & 0x7f {
				case 126:
					s.need += 2
				case 127:
					s.need += 8
				}
				if s.hdr[1]&0x80 != 0 {
					s.need += 4 // masking key
				}
			}
			if s.n >= 2 && s.n == s.need {
				s.headerDone()
			}
		}
	}
	if stop && s.atBoundary() {
		return len(p)
	}
	return -1
}

func (s *frameScanner) headerDone() {
	s.op = s.hdr[0] & 0x0f
	l := uint64(s.hdr[1] & 0x7f)
	switch l {
	case 126:
		l = uint64(binary.BigEndian.Uint16(s.hdr[2:4]))
	case 127:
		l = binary.BigEndian.Uint64(s.hdr[2:10])
		if l>>63 != 0 {
			s.bad = true // RFC 6455: the most significant bit MUST be 0
		}
	}
	if s.op >= 8 && (l > 125 || s.hdr[0]&0x80 == 0) {
		s.bad = true // control frames are short and never fragmented
	}
	s.n, s.need, s.left = 0, 0, l
	if l == 0 {
		s.frameDone()
	}
}

func (s *frameScanner) frameDone() {
	if s.op == 8 {
		s.closes++
	}
}

// frameWriter is one direction's destination: it writes what the copier
// gives it and, once asked to close, a close frame at the next boundary.
type frameWriter struct {
	dst  io.Writer
	tok  chan struct{} // capacity 1: held by whoever writes to dst
	scan frameScanner  // used only by the holder of tok
	base int           // scan.closes when our close frame went out

	mu      sync.Mutex // guards following (never held across I/O)
	state   int
	pending []byte        // the close frame, while state is fwClosing
	sent    chan struct{} // closed when the close frame is out, or cannot be
	ok      bool          // the close frame was written (or the peer had sent one first)
	ack     chan struct{} // closed when a close frame follows ours in this direction
	acked   bool
}

const (
	fwOpen    = iota // passing bytes
	fwClosing        // a close frame is due at the next boundary
	fwClosed         // the close frame is out: bytes are dropped
)

func newFrameWriter(dst io.Writer, head bool) *frameWriter {
	return &frameWriter{dst: dst, tok: make(chan struct{}, 1), scan: frameScanner{head: head},
		sent: make(chan struct{}), ack: make(chan struct{})}
}

// Write is the copier's: see the file comment.
func (f *frameWriter) Write(p []byte) (int, error) {
	f.tok <- struct{}{}
	defer func() { <-f.tok }()
	f.mu.Lock()
	state := f.state
	f.mu.Unlock()
	switch state {
	case fwOpen:
		n, err := f.dst.Write(p)
		f.scan.consume(p[:n], false)
		return n, err
	case fwClosing:
		off := f.scan.consume(p, true)
		if off < 0 {
			return f.dst.Write(p)
		}
		if off > 0 {
			if n, err := f.dst.Write(p[:off]); err != nil {
				f.done(false)
				return n, err
			}
		}
		err := f.writePending()
		f.drop(p[off:])
		if err != nil {
			return off, err
		}
		return len(p), nil
	default:
		f.drop(p)
		return len(p), nil
	}
}

// writePending writes the close frame; the caller holds tok, at a
// boundary. When a close frame already went this way (the peer is closing
// too), none is added: a second one would break the protocol.
func (f *frameWriter) writePending() error {
	f.mu.Lock()
	frame := f.pending
	f.mu.Unlock()
	var err error
	if f.scan.closes == 0 {
		_, err = f.dst.Write(frame)
	}
	f.base = f.scan.closes
	f.done(err == nil)
	return err
}

// done ends fwClosing: the frame is out (ok) or cannot be.
func (f *frameWriter) done(ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == fwClosed {
		return
	}
	f.state, f.ok, f.pending = fwClosed, ok, nil
	close(f.sent)
}

// drop follows bytes that are not passed on, for the answering close
// frame.
func (f *frameWriter) drop(p []byte) {
	f.scan.consume(p, false)
	if f.scan.closes > f.base {
		f.mu.Lock()
		if !f.acked {
			f.acked = true
			close(f.ack)
		}
		f.mu.Unlock()
	}
}

// begin asks for a close frame at the next boundary.
func (f *frameWriter) begin(frame []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == fwOpen {
		f.state, f.pending = fwClosing, frame
	}
}

// flush writes the close frame now if the direction is idle at a boundary,
// else waits for the copier to write it, until dead. It reports whether the
// frame went out.
func (f *frameWriter) flush(dead <-chan struct{}) bool {
	select {
	case f.tok <- struct{}{}:
		f.mu.Lock()
		closing := f.state == fwClosing
		f.mu.Unlock()
		switch {
		case closing && f.scan.atBoundary():
			_ = f.writePending()
		case closing && f.scan.bad:
			f.done(false) // no boundary will ever come
		}
		<-f.tok
	case <-f.sent:
	case <-dead:
		return false
	}
	select {
	case <-f.sent:
	case <-dead:
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ok
}

// closePayload is a close frame's payload: the code, then the reason
// (at most 123 bytes; ours are short).
func closePayload(code int, reason string) []byte {
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return append(p, reason...)
}

// serverCloseFrame is a close frame toward the client: unmasked.
func serverCloseFrame(code int, reason string) []byte {
	p := closePayload(code, reason)
	return append([]byte{0x88, byte(len(p))}, p...)
}

// clientCloseFrame is a close frame toward the upstream: a client's frame,
// masked (RFC 6455 §5.3).
func clientCloseFrame(code int, reason string) []byte {
	p := closePayload(code, reason)
	var key [4]byte
	_, _ = rand.Read(key[:])
	f := append([]byte{0x88, 0x80 | byte(len(p))}, key[:]...)
	for i, c := range p {
		f = append(f, c^key[i&3])
	}
	return f
}

// upgraded is one connection switched to another protocol (a WebSocket,
// in practice): both of its ends, and how to close them.
type upgraded struct {
	ws    bool // WebSocket framing: closed with close frames
	grace time.Duration
	ll    *longLived

	client   *clientConn   // set by Hijack
	upstream *upstreamConn // set by the response hook
	cw, uw   *frameWriter  // toward the client, toward the upstream; nil unless ws

	dead     chan struct{} // closed by cut
	cutOnce  sync.Once
	mu       sync.Mutex  // guards following
	hard     *time.Timer // cuts after grace once closing started
	closing  bool
	finished chan struct{} // closed when finish returns; nil when not started
}

// clientConn is the hijacked client connection as ReverseProxy sees it.
type clientConn struct {
	net.Conn
	br *bufio.Reader // the hijack's buffered bytes, read first
	w  io.Writer     // the frameWriter, or the connection itself
	ll *longLived
}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if n := c.br.Buffered(); n > 0 {
			return c.br.Read(p[:min(len(p), n)])
		}
		c.br = nil
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		c.ll.ended(ClosedClient)
	}
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) { return c.w.Write(p) }

var errNoCloseWrite = errors.New("proxy: the client connection cannot half-close")

// CloseWrite half-closes toward the client when the upstream is done, as
// ReverseProxy does with a bare connection.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// upstreamConn is the upstream end (the 101 response's body).
type upstreamConn struct {
	rwc io.ReadWriteCloser
	w   io.Writer
	ll  *longLived
}

func (u *upstreamConn) Read(p []byte) (int, error) {
	n, err := u.rwc.Read(p)
	if err != nil {
		u.ll.ended(ClosedUpstream)
	}
	return n, err
}

func (u *upstreamConn) Write(p []byte) (int, error) { return u.w.Write(p) }
func (u *upstreamConn) Close() error                { return u.rwc.Close() }

// abort closes the connection: close frames both ways for a WebSocket (then
// both ends once the client answers, or after the grace period), the TCP
// connections at once for anything else. It does not block.
func (u *upgraded) abort(code int, reason string) {
	if !u.ws {
		u.cut()
		return
	}
	u.mu.Lock()
	select {
	case <-u.dead: // already cut (the request ended meanwhile)
		u.mu.Unlock()
		return
	default:
	}
	if u.closing {
		u.mu.Unlock()
		return
	}
	u.closing = true
	u.finished = make(chan struct{})
	u.hard = time.AfterFunc(u.grace, u.cut)
	u.mu.Unlock()
	u.cw.begin(serverCloseFrame(code, reason))
	u.uw.begin(clientCloseFrame(code, reason))
	go u.finish()
}

// finish sees the close through: frames out, the client's answer (or the
// grace period), then both connections closed.
func (u *upgraded) finish() {
	defer close(u.finished)
	toClient := u.cw.flush(u.dead)
	u.uw.flush(u.dead)
	if toClient {
		select {
		case <-u.uw.ack: // the client answered our close frame
		case <-u.dead:
		}
	}
	u.cut()
}

// cut closes both connections; the copiers end, and so does the request.
func (u *upgraded) cut() {
	u.cutOnce.Do(func() {
		close(u.dead)
		u.mu.Lock()
		if u.hard != nil {
			u.hard.Stop()
		}
		u.mu.Unlock()
		if u.client != nil {
			_ = u.client.Conn.Close()
		}
		if u.upstream != nil {
			_ = u.upstream.rwc.Close()
		}
	})
}

// release runs when the request ends: nothing of the connection outlives
// it.
func (u *upgraded) release() {
	u.cut()
	u.mu.Lock()
	finished := u.finished
	u.mu.Unlock()
	if finished != nil {
		<-finished // returns at once: dead is closed
	}
}
