package linewriter

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sessiongate/sessiongate/internal/testwait"
)

// gated is an output whose writes block until the test releases them.
type gated struct {
	mu      sync.Mutex
	writes  []string
	entered chan struct{} // one value per Write call, on entry
	release chan struct{} // one value lets one Write call return
	err     error
}

func newGated() *gated {
	return &gated{entered: make(chan struct{}, 1024), release: make(chan struct{}, 1024)}
}

func (g *gated) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.writes = append(g.writes, string(p))
	g.mu.Unlock()
	return len(p), g.err
}

func (g *gated) calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.writes...)
}

func TestLinesArrivingDuringAWriteGoOutInOneWrite(t *testing.T) {
	g := newGated()
	w := New(g, 0)
	w.Write([]byte("first\n"))
	testwait.Receive(t, g.entered, "the first write")
	// The output is busy with "first": these lines must wait and then go
	// out together, not one write each.
	var want strings.Builder
	for i := range 100 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	g.release <- struct{}{}
	testwait.Receive(t, g.entered, "the second write")
	g.release <- struct{}{}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	got := g.calls()
	if len(got) != 2 || got[0] != "first\n" || got[1] != want.String() {
		t.Fatalf("writes = %d %q, want 2: the first line, then the 100 that arrived during it", len(got), got)
	}
}

func TestAnIdleWriterWritesAtOnce(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) }), 0)
	w.Write([]byte("alone\n"))
	// No Sync: the line must reach the output by itself, with no timer.
	testwait.Eventually(t, "the line to be written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return out.String() == "alone\n"
	})
}

func TestConcurrentWritersLoseAndTearNothing(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, 256) // small bound: writers often wait for room
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				w.Write(fmt.Appendf(nil, "g%02d-%03d %s\n", g, i, strings.Repeat("x", i%40)))
			}
		})
	}
	wg.Wait()
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 16*500 {
		t.Fatalf("%d lines, want %d", len(lines), 16*500)
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%02d-%03d", &g, &i); err != nil || l != fmt.Sprintf("g%02d-%03d %s", g, i, strings.Repeat("x", i%40)) {
			t.Fatalf("torn line %q", l)
		}
		key := fmt.Sprint(g)
		if next[key] != i {
			t.Fatalf("writer %d: line %d after %d: lines of one writer out of order", g, i, next[key]-1)
		}
		next[key]++
	}
}

func TestAFullBufferMakesWritersWaitNotDrop(t *testing.T) {
	g := newGated()
	w := New(g, 10)
	w.Write([]byte("0123456789")) // handed to the output, which blocks
	testwait.Receive(t, g.entered, "the first write")
	w.Write([]byte("abcdefghij")) // pending is now full
	done := make(chan struct{})
	go func() { w.Write([]byte("K")); close(done) }()
	testwait.Eventually(t, "the writer of K to wait for room", func() bool {
		select {
		case <-done:
			t.Fatal("a write over the bound returned while the buffer was full")
		default:
		}
		return waitingInWrite()
	})
	g.release <- struct{}{} // first write done: pending goes out, room again
	testwait.Receive(t, done, "the blocked writer")
	g.release <- struct{}{}
	g.release <- struct{}{}
	w.Sync()
	if got := g.calls(); len(got) != 3 || strings.Join(got, "|") != "0123456789|abcdefghij|K" {
		t.Fatalf("writes %q, want the full buffer drained before K was added", got)
	}
}

// waitingInWrite reports whether a goroutine is blocked in Write, waiting
// for room.
func waitingInWrite() bool {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "sync.(*Cond).Wait") && strings.Contains(g, "linewriter.(*Writer).Write(") {
			return true
		}
	}
	return false
}

func TestSyncWaitsForPendingLinesAndLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	g := newGated()
	w := New(g, 0)
	w.Write([]byte("a\n"))
	testwait.Receive(t, g.entered, "the first write")
	w.Write([]byte("b\n"))
	synced := make(chan error, 1)
	go func() { synced <- w.Sync() }()
	g.release <- struct{}{}
	select {
	case <-synced:
		t.Fatal("Sync returned with a line still pending")
	default:
	}
	testwait.Receive(t, g.entered, "the second write")
	g.release <- struct{}{}
	if err := testwait.Receive(t, synced, "Sync"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.calls(), ""); got != "a\nb\n" {
		t.Fatalf("output %q", got)
	}
	testwait.Eventually(t, "no goroutine left by an idle writer", func() bool { return runtime.NumGoroutine() <= before })
}

func TestOutputErrorsAreReported(t *testing.T) {
	boom := errors.New("disk full")
	w := New(writerFunc(func(p []byte) (int, error) { return 0, boom }), 0)
	w.Write([]byte("x\n"))
	if err := w.Sync(); !errors.Is(err, boom) {
		t.Fatalf("Sync = %v, want the output's error", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// BenchmarkLines compares one write(2) per line (what a locked file
// does) with the group-commit writer, on /dev/null, from parallel
// writers.
func BenchmarkLines(b *testing.B) {
	line := []byte(`{"level":"info","ts":"2026-12-05T05:00:00.000Z","msg":"request","method":"GET","path":"/","status":200,"reason":"","dur_ms":0.4,"request_id":"0123456789abcdef"}` + "\n")
	devnull := func(b *testing.B) *lockedFile {
		f, err := openDevNull()
		if err != nil {
			b.Skip(err)
		}
		b.Cleanup(func() { f.Close() })
		return &lockedFile{f: f}
	}
	b.Run("write-per-line", func(b *testing.B) {
		out := devnull(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				out.Write(line)
			}
		})
	})
	b.Run("group-commit", func(b *testing.B) {
		w := New(devnull(b), 0)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Write(line)
			}
		})
		w.Sync()
	})
}
