package proxy

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/sessiongate/sessiongate/internal/wstest"
)

// frames builds a stream of frames of the given payload sizes (masked or
// not), and returns it with the offset where each frame ends.
func frames(sizes []int, masked bool) ([]byte, []int) {
	var out []byte
	var ends []int
	for i, n := range sizes {
		op := byte(wstest.OpBinary)
		if i%3 == 2 {
			op = wstest.OpPing
			n %= 126
		}
		out = append(out, wstest.Encode(true, op, bytes.Repeat([]byte{byte(i)}, n), masked)...)
		ends = append(ends, len(out))
	}
	return out, ends
}

func TestFrameScannerFindsEveryBoundary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sizes  []int
		masked bool
	}{
		{"empty and short payloads", []int{0, 1, 125, 0}, false},
		{"16-bit lengths", []int{126, 127, 300, 65535}, false},
		{"64-bit lengths", []int{65536, 70000}, false},
		{"masked client frames", []int{0, 5, 126, 65536}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, ends := frames(tc.sizes, tc.masked)
			for _, chunk := range []int{1, 2, 3, 7, 13, 1000, len(stream)} {
				var s frameScanner
				var got []int
				pos := 0
				for pos < len(stream) {
					p := stream[pos:min(pos+chunk, len(stream))]
					for len(p) > 0 {
						off := s.consume(p, true)
						if off < 0 {
							pos += len(p)
							break
						}
						if off == 0 {
							// At a boundary: step over one byte to go on.
							s.consume(p[:1], false)
							pos++
							p = p[1:]
							if s.atBoundary() {
								got = append(got, pos)
							}
							continue
						}
						pos += off
						p = p[off:]
						got = append(got, pos)
					}
				}
				if !s.atBoundary() {
					t.Fatalf("chunk %d: not at a boundary at the end", chunk)
				}
				if !equalInts(got, ends) {
					t.Fatalf("chunk %d: boundaries %v, want %v", chunk, got, ends)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFrameScannerRefusesWhatIsNotFraming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"64-bit length with the top bit set", append([]byte{0x82, 127}, 0x80, 0, 0, 0, 0, 0, 0, 1)},
		{"control frame over 125 bytes", append([]byte{0x89, 126}, binary.BigEndian.AppendUint16(nil, 200)...)},
		{"fragmented control frame", []byte{0x08, 0}},
	} {
		var s frameScanner
		s.consume(tc.bytes, false)
		if !s.bad || s.atBoundary() {
			t.Errorf("%s: scanner still believes in boundaries", tc.name)
		}
	}
}

func TestFrameScannerSkipsTheResponseHead(t *testing.T) {
	t.Parallel()
	head := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
	s := frameScanner{head: true}
	if s.atBoundary() {
		t.Fatal("at a boundary before the head")
	}
	if off := s.consume(head[:10], true); off != -1 {
		t.Fatalf("boundary inside the head at %d", off)
	}
	if off := s.consume(head[10:], true); off != len(head)-10 {
		t.Fatalf("head end at %d, want %d", off, len(head)-10)
	}
}

// recorder is a dst that keeps what it was given.
type recorder struct{ bytes.Buffer }

// TestFrameWriterInjectsOnlyBetweenFrames feeds random frame streams in
// random pieces and asks for a close at a random moment: what comes out is
// always whole frames, then exactly one close frame, then nothing.
func TestFrameWriterInjectsOnlyBetweenFrames(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	closeFrame := serverCloseFrame(CloseCodeSessionRevoked, ClosedSessionRevoked)
	for iter := 0; iter < 300; iter++ {
		sizes := make([]int, 1+rng.IntN(6))
		for i := range sizes {
			sizes[i] = []int{0, 3, 125, 126, 200, 70000}[rng.IntN(6)]
		}
		stream, ends := frames(sizes, false)
		var dst recorder
		f := newFrameWriter(&dst, false)
		at := rng.IntN(len(stream) + 1) // when the close is asked for
		pos, asked := 0, false
		for pos < len(stream) {
			if !asked && pos >= at {
				f.begin(closeFrame)
				asked, at = true, pos
				// The closer's own attempt: it writes only at a boundary.
				select {
				case f.tok <- struct{}{}:
					if f.scan.atBoundary() {
						_ = f.writePending()
					}
					<-f.tok
				default:
				}
			}
			n := 1 + rng.IntN(500)
			p := stream[pos:min(pos+n, len(stream))]
			if _, err := f.Write(p); err != nil {
				t.Fatal(err)
			}
			pos += len(p)
		}
		if !asked {
			at = len(stream)
			f.begin(closeFrame)
			_ = f.flush(make(chan struct{}))
		}
		out := dst.Bytes()
		cut := len(out) - len(closeFrame)
		if cut < 0 || !bytes.Equal(out[cut:], closeFrame) {
			t.Fatalf("iter %d: output does not end with the close frame", iter)
		}
		// The close frame comes right after the first boundary at or after
		// the moment it was asked for.
		want := len(stream)
		for _, e := range append([]int{0}, ends...) {
			if e >= at {
				want = e
				break
			}
		}
		if cut != want || !bytes.Equal(out[:cut], stream[:cut]) {
			t.Fatalf("iter %d: close frame after %d bytes, want %d (asked at %d, boundaries %v)", iter, cut, want, at, ends)
		}
	}
}

func TestFrameWriterSeesTheAnsweringClose(t *testing.T) {
	t.Parallel()
	var dst recorder
	f := newFrameWriter(&dst, false)
	f.begin(clientCloseFrame(CloseCodeSessionRevoked, ClosedSessionRevoked))
	if !f.flush(make(chan struct{})) {
		t.Fatal("close frame not written on an idle direction")
	}
	// What the client sends next is dropped, its close frame noticed.
	answer := append(wstest.Encode(true, wstest.OpText, []byte("late"), true), wstest.Encode(true, wstest.OpClose, []byte{0x11, 0x41}, true)...)
	for i := range answer {
		if _, err := f.Write(answer[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-f.ack:
	default:
		t.Fatal("the answering close frame was not noticed")
	}
	if got := dst.Len(); got != len(clientCloseFrame(CloseCodeSessionRevoked, ClosedSessionRevoked)) {
		t.Fatalf("%d bytes passed after the close frame", got)
	}
}

func TestFrameWriterAddsNoSecondClose(t *testing.T) {
	t.Parallel()
	var dst recorder
	f := newFrameWriter(&dst, false)
	peerClose := wstest.Encode(true, wstest.OpClose, []byte{0x03, 0xe8}, false)
	if _, err := f.Write(peerClose); err != nil {
		t.Fatal(err)
	}
	f.begin(serverCloseFrame(CloseCodeGoingAway, ClosedShutdown))
	if !f.flush(make(chan struct{})) {
		t.Fatal("flush failed")
	}
	if !bytes.Equal(dst.Bytes(), peerClose) {
		t.Fatalf("a second close frame was sent after the upstream's own: % x", dst.Bytes())
	}
}

func TestCloseFrames(t *testing.T) {
	t.Parallel()
	s := serverCloseFrame(CloseCodeSessionRevoked, "session-revoked")
	if s[0] != 0x88 || s[1] != byte(2+len("session-revoked")) || binary.BigEndian.Uint16(s[2:]) != 4401 || string(s[4:]) != "session-revoked" {
		t.Fatalf("server close frame: % x", s)
	}
	c := clientCloseFrame(CloseCodeSessionRevoked, "session-revoked")
	if c[0] != 0x88 || c[1] != 0x80|byte(2+len("session-revoked")) {
		t.Fatalf("client close frame header: % x", c[:2])
	}
	key, p := c[2:6], append([]byte(nil), c[6:]...)
	for i := range p {
		p[i] ^= key[i&3]
	}
	if binary.BigEndian.Uint16(p) != 4401 || string(p[2:]) != "session-revoked" {
		t.Fatalf("client close frame payload: % x", p)
	}
}

func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, uint8(3))
	f.Add(append([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}, make([]byte, 10)...), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var whole, pieces frameScanner
		whole.consume(data, false)
		c := int(chunk%32) + 1
		for i := 0; i < len(data); i += c {
			pieces.consume(data[i:min(i+c, len(data))], false)
		}
		// The scanner's state never depends on how the bytes were cut.
		if whole != pieces {
			t.Fatalf("state after whole %+v, after pieces of %d %+v", whole, c, pieces)
		}
	})
}
