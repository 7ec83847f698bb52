package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiongate/sessiongate/proxy"
)

var _ proxy.ClaimHeaderObserver = (*metrics)(nil)

func (m *metrics) registerClaims() {
	m.claimsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiongate_claim_headers_dropped_total",
		Help: "Mapped claims (headers.claims) the token had but that were not sent upstream, by header and reason (control-character, too-long).",
	}, []string{"header", "reason"})
	m.reg.MustRegister(m.claimsDropped)
}

// ClaimHeaderDropped implements proxy.ClaimHeaderObserver.
func (m *metrics) ClaimHeaderDropped(header, reason string) {
	m.claimsDropped.WithLabelValues(header, reason).Inc()
}
