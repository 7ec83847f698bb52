package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
)

// Kinds of failed upstream round trips (Event.UpstreamError). They are
// metric label values: the set is closed.
const (
	// UpstreamDial: no connection could be made (refused, unreachable,
	// DNS failure, dial timeout).
	UpstreamDial = "dial"
	// UpstreamTimeout: connected, but no response headers within
	// server.upstream_timeout (or another deadline).
	UpstreamTimeout = "timeout"
	// UpstreamReset: the upstream closed or reset the connection before
	// answering.
	UpstreamReset = "reset"
	// UpstreamTLS: the TLS handshake with an https upstream failed (an
	// untrusted or mismatched certificate, a protocol mismatch).
	UpstreamTLS = "tls"
	// UpstreamCanceled: the client went away first (answered 499, not an
	// upstream fault).
	UpstreamCanceled = "canceled"
	// UpstreamOther: anything else.
	UpstreamOther = "other"
)

// UpstreamErrorKinds lists every kind UpstreamErrorKind returns.
var UpstreamErrorKinds = []string{UpstreamDial, UpstreamTimeout, UpstreamReset, UpstreamTLS, UpstreamCanceled, UpstreamOther}

// UpstreamErrorKind classifies the error of a failed upstream round trip
// made for a request whose context is ctx. The order matters: a dial that
// timed out is a dial error, and a cancellation counts as the client's only
// when the request's own context is done.
func UpstreamErrorKind(ctx context.Context, err error) string {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return UpstreamCanceled
	}
	var oe *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &oe) && oe.Op == "dial", errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return UpstreamDial
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return UpstreamTimeout
	}
	var recErr tls.RecordHeaderError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var alert tls.AlertError
	if errors.As(err, &recErr) || errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &alert) {
		return UpstreamTLS
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return UpstreamReset
	}
	return UpstreamOther
}
