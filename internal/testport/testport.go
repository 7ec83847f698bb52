// Package testport reserves loopback ports, in tests, for servers that take
// an address rather than a listener: the sessiongate binary, redis-server,
// nginx, Caddy, Prometheus, chromedriver.
//
// The usual way, listening on 127.0.0.1:0, closing the listener and passing
// its port on, leaves a window in which any other socket of the machine
// (another test's listener, an outgoing connection's local port) can take
// the port. A reservation closes that window: on Linux it is a socket bound
// to the port with SO_REUSEADDR but never listening, held until the test
// ends. The kernel then gives the port to no other bind to port 0 and to no
// outgoing connection, while the server the test starts, which binds with
// SO_REUSEADDR too (as Go's net.Listen, redis-server, nginx and Chromium's
// server sockets do), can still bind and listen on it. Until something
// listens there, a connection to the address is refused: a reservation is
// also the address of a server that is down.
//
// Only tests import it.
package testport

import (
	"net"
	"strconv"
	"testing"
)

// Reserve reserves a loopback port until tb ends and returns its address,
// 127.0.0.1:port.
func Reserve(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ReservePort(tb)))
}

// ReservePort is Reserve's port alone.
func ReservePort(tb testing.TB) int {
	tb.Helper()
	port, release, err := reserve()
	if err != nil {
		tb.Fatalf("testport: %v", err)
	}
	tb.Cleanup(release)
	return port
}
