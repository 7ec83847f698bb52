package proxy_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/testport"
)

// Bounds on everything the real-front-proxy tests wait for.
const (
	childStartTimeout = 10 * time.Second
	childStopTimeout  = 5 * time.Second
	childBindAttempts = 5
)

// errAddrInUse means the child lost the race for the port we picked.
var errAddrInUse = errors.New("address already in use")

// frontProxyBinary finds a front proxy's binary on PATH or at fallback.
// Missing, the test skips locally and fails in CI, where .ci/run installs it.
func frontProxyBinary(t *testing.T, name, fallback, missing string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if fallback != "" {
		if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return fallback
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(missing)
	}
	t.Skip(missing)
	return ""
}

// childProcess is a front proxy (nginx, Caddy) running in the foreground as
// the test's child, listening on addr, writing everything under dir.
type childProcess struct {
	name     string
	addr     string
	dir      string
	logFiles []string  // under dir, shown when the test fails
	stopSig  os.Signal // the graceful stop
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	err      error         // Wait's result, set before done is closed
}

// newChildProcess reserves a loopback port (package testport: nothing else
// can take it before the child binds it) and a fresh directory. startChild
// still retries on another port should the child find it in use.
func newChildProcess(t *testing.T, name string, stopSig os.Signal, logFiles ...string) (*childProcess, error) {
	port := testport.ReservePort(t)
	return &childProcess{
		name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: t.TempDir(),
		logFiles: logFiles, stopSig: stopSig, done: make(chan struct{}),
	}, nil
}

func (c *childProcess) logs() string {
	var b strings.Builder
	for _, f := range c.logFiles {
		data, _ := os.ReadFile(filepath.Join(c.dir, f))
		fmt.Fprintf(&b, "--- %s ---\n%s", f, data)
	}
	return b.String()
}

// run starts cmd with stdout and stderr in dir/output, and waits until
// ready reports true and the port accepts a connection. On failure the
// child is stopped; a port lost to another process is errAddrInUse.
func (c *childProcess) run(t *testing.T, cmd *exec.Cmd, output string, ready func() bool) error {
	out, err := os.Create(filepath.Join(c.dir, output))
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own descriptor
	c.cmd = cmd
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	if err := c.waitReady(ready); err != nil {
		c.stop(t)
		if strings.Contains(strings.ToLower(c.logs()), "address already in use") {
			return fmt.Errorf("%s: %w (%s)", c.name, errAddrInUse, c.addr)
		}
		return fmt.Errorf("%w\n%s", err, c.logs())
	}
	t.Cleanup(func() {
		c.stop(t)
		if t.Failed() {
			t.Logf("%s logs:\n%s", c.name, c.logs())
		}
	})
	return nil
}

// waitReady polls until ready reports true (the child has bound its
// listener, so a port some other process grabbed is not mistaken for
// ours) and the port accepts a connection; it gives up when the child exits
// or after childStartTimeout.
func (c *childProcess) waitReady(ready func() bool) error {
	deadline := time.NewTimer(childStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return fmt.Errorf("%s exited before accepting connections: %v", c.name, c.err)
		case <-deadline.C:
			return fmt.Errorf("%s did not accept connections on %s within %s", c.name, c.addr, childStartTimeout)
		case <-tick.C:
		}
		if !ready() {
			continue
		}
		conn, err := net.DialTimeout("tcp", c.addr, time.Second)
		if err != nil {
			continue
		}
		conn.Close()
		return nil
	}
}

// stop asks the child to finish (stopSig) and kills it if it has not exited
// within childStopTimeout.
func (c *childProcess) stop(t *testing.T) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(c.stopSig)
	select {
	case <-c.done:
		return
	case <-time.After(childStopTimeout):
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.done:
	case <-time.After(childStopTimeout):
		t.Errorf("%s (pid %d) did not exit after SIGKILL", c.name, c.cmd.Process.Pid)
	}
}

// startChild runs try until the child is up, retrying on another port when
// it lost its port to another process.
func startChild(t *testing.T, try func() (*childProcess, error)) *childProcess {
	t.Helper()
	for attempt := 1; ; attempt++ {
		c, err := try()
		if err == nil {
			return c
		}
		if errors.Is(err, errAddrInUse) && attempt < childBindAttempts {
			t.Logf("attempt %d: %v; retrying on another port", attempt, err)
			continue
		}
		t.Fatal(err)
	}
}

// rewriteAddresses replaces each old string, which must occur exactly once
// in the shipped file, with its new one: only addresses change, and an edit
// of the shipped file that breaks a substitution fails loudly rather than
// test something else.
func rewriteAddresses(t *testing.T, file, conf string, pairs ...[2]string) string {
	t.Helper()
	for _, p := range pairs {
		if n := strings.Count(conf, p[0]); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want exactly 1 (the test rewrites it)", file, p[0], n)
		}
		conf = strings.Replace(conf, p[0], p[1], 1)
	}
	return conf
}
