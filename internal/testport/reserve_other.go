//go:build !linux

package testport

import "net"

// reserve falls back to the racy way where SO_REUSEADDR does not let a
// second socket bind a port that a non-listening one holds (BSD, macOS,
// Windows): a port free a moment ago.
func reserve() (port int, release func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, func() {}, nil
}
