// Package redistest runs a throwaway redis-server for tests: its own
// process on a loopback port reserved for it (package testport: nothing
// else can take the port between its choice and redis-server's bind, nor
// while the server is stopped), without persistence, stopped when the
// test ends. Without a redis-server binary the test is skipped, or fails
// when CI=true (CI installs it: .ci/run).
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testport"
)

// Server is one redis-server process. Stop and Start keep the port, so a
// test can take Redis away and bring it back empty.
type Server struct {
	tb    testing.TB
	bin   string
	port  int
	conf  string   // a config file to start from, or ""
	extra []string // more arguments

	mu   sync.Mutex    // guards following
	proc *os.Process   // nil while stopped
	done chan struct{} // closed when proc has exited
}

// Binary returns the redis-server path, skipping tb (failing it with
// CI=true) when there is none.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("redis-server is not installed (CI installs it in .ci/run: apt-get install redis-server)")
		}
		tb.Skip("redis-server is not installed")
	}
	return bin
}

// Start starts a redis-server on a reserved loopback port and stops it in
// tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, "", nil)
}

// StartWith is Start with a config file (first argument, "" for none) and
// extra arguments, such as "--cluster-enabled", "yes".
func StartWith(tb testing.TB, conf string, extra []string) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: Binary(tb), conf: conf, extra: extra, port: testport.ReservePort(tb)}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Stop kills the server (SIGKILL: as abrupt as a crash) and waits for it.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Kill()
	<-s.done
	s.proc = nil
}

// Restart starts the server again, empty, on the same port.
func (s *Server) Restart() {
	s.tb.Helper()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err = s.start(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port may still be held briefly
	}
	if err != nil {
		s.tb.Fatal(err)
	}
}

// StartOn starts a server on a port chosen by the test (for example one a
// replica was already configured with while nothing listened there).
func StartOn(tb testing.TB, port int) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: Binary(tb), port: port}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	out := &syncBuffer{}
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--loglevel", "warning")
	args = append(args, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if ping(s.Addr()) == nil {
			s.proc, s.done = cmd.Process, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redistest: redis-server exited on port %d: %v\n%s", s.port, waitErr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redistest: redis-server did not answer PING on port %d within 5s\n%s", s.port, out.String())
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline, not a fixed wait
	}
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redistest: PING answered %q", line)
	}
	return nil
}

// FreePort reserves a loopback port that nothing listens on until StartOn
// starts a server there (for a URL that must not answer yet); nothing else
// can take it meanwhile.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return testport.ReservePort(tb)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
