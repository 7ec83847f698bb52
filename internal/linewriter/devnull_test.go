package linewriter

import (
	"os"
	"sync"
)

type lockedFile struct {
	mu sync.Mutex
	f  *os.File
}

func (l *lockedFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *lockedFile) Close() error { return l.f.Close() }

func openDevNull() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_WRONLY, 0) }
