// Package linewriter is the process log's default output: a group-commit
// writer. A line is handed to the operating system as soon as no other
// write is in progress; lines that arrive while a write is in progress are
// appended to a buffer and go out together in the next write. At a few
// requests per second every access-log line is written at once, as with a
// plain file; at thousands per second one write(2) carries many lines, so
// the cost per line falls as the load rises, with no flush timer and no
// line held back longer than one write takes.
//
// Nothing is dropped: when a slow output lets the pending buffer reach its
// bound, writers wait for it to drain (as they would have waited on the
// output itself). Sync waits until every line written before it has been
// handed to the output. What a crash can lose is what was still pending:
// the lines of the write in progress, never a timer's worth.
package linewriter

import (
	"io"
	"sync"
)

// DefaultMax bounds the bytes waiting for a write in progress.
const DefaultMax = 1 << 20

// Writer is a group-commit io.Writer; it implements zapcore.WriteSyncer.
// The zero value is not usable; call New.
type Writer struct {
	out io.Writer
	max int

	mu      sync.Mutex
	drained *sync.Cond // a write finished (room in pending, or idle)
	pending []byte     // lines waiting for the next write
	spare   []byte     // the buffer of the last write, reused
	writing bool       // a drain goroutine owns the output
	err     error      // the first error of the output, reported once
}

// New returns a Writer to out that keeps at most max bytes pending
// (DefaultMax when max <= 0). out is written by one goroutine at a time.
func New(out io.Writer, max int) *Writer {
	if max <= 0 {
		max = DefaultMax
	}
	w := &Writer{out: out, max: max}
	w.drained = sync.NewCond(&w.mu)
	return w
}

// Write appends p to the pending lines and starts a write unless one is in
// progress. It returns once p is buffered; it blocks only while the pending
// buffer is full. The error is the output's first error, if any.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for w.writing && len(w.pending) > 0 && len(w.pending)+len(p) > w.max {
		w.drained.Wait()
	}
	w.pending = append(w.pending, p...)
	if !w.writing {
		w.writing = true
		// A goroutine per busy period, not one per Writer: an idle Writer
		// holds no goroutine, so nothing outlives its last line.
		go w.drain()
	}
	err := w.err
	w.err = nil
	w.mu.Unlock()
	return len(p), err
}

// drain writes the pending lines until none are left.
func (w *Writer) drain() {
	w.mu.Lock()
	for len(w.pending) > 0 {
		batch := w.pending
		w.pending = w.spare[:0]
		w.mu.Unlock()
		_, err := w.out.Write(batch)
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
		}
		if cap(batch) <= 2*w.max {
			w.spare = batch
		} else {
			w.spare = nil // a burst grew it; let it go
		}
		w.drained.Broadcast()
	}
	w.writing = false
	w.drained.Broadcast()
	w.mu.Unlock()
}

// Sync waits until every line written before it has been handed to the
// output, then syncs the output if it can be synced. An output that cannot
// (a pipe, a terminal) is not an error.
func (w *Writer) Sync() error {
	w.mu.Lock()
	for w.writing {
		w.drained.Wait()
	}
	err := w.err
	w.err = nil
	w.mu.Unlock()
	if s, ok := w.out.(interface{ Sync() error }); ok {
		if serr := s.Sync(); serr != nil && err == nil && !unsyncable(serr) {
			err = serr
		}
	}
	return err
}
