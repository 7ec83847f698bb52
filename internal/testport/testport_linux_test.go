package testport_test

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sessiongate/sessiongate/internal/testport"
)

// bindExclusive binds a socket without SO_REUSEADDR to port, as a server
// that does not share would, and returns the error.
func bindExclusive(t *testing.T, port int) error {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	return syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port})
}

func TestReservedPortIsHeldUntilAServerTakesIt(t *testing.T) {
	t.Parallel()
	addr := testport.Reserve(t)
	port := net.TCPAddrFromAddrPort(netipAddrPort(t, addr)).Port

	// Held: nothing else may bind it, and nothing answers there yet.
	if err := bindExclusive(t, port); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a bind without SO_REUSEADDR to the reserved port: %v, want EADDRINUSE", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a connection to a reserved port was accepted; want it refused")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want ECONNREFUSED", err)
	}

	// Handed over: the server the test starts binds and listens on it.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the server could not take the reserved port: %v", err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial after the server took the port: %v", err)
	}
	c.Close()
}

func netipAddrPort(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
