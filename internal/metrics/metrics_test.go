package metrics

import (
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/proxy"
)

// counterValue is the value of name's series with the given labels (a
// histogram's: its count), -1 when there is none.
func counterValue(t *testing.T, s *Set, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// Observe resolves each label set once: later events of the same set and
// events of other sets land on their own series.
func TestObserveCountsByLabelSet(t *testing.T) {
	s := New()
	ok := proxy.Event{Route: "/api", Status: 200, Duration: time.Millisecond, Verify: time.Microsecond, Upstream: time.Millisecond}
	denied := proxy.Event{Route: "/api", Status: 401, Reason: "session-token-missing", Duration: time.Millisecond}
	failed := proxy.Event{Route: "/other", Status: 502, Duration: time.Millisecond, UpstreamError: "dial"}
	for range 3 {
		s.Observe(ok)
	}
	s.Observe(denied)
	s.Observe(failed)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sessiongate_requests_total", map[string]string{"route": "/api", "status": "200", "reason": ""}, 3},
		{"sessiongate_requests_total", map[string]string{"route": "/api", "status": "401", "reason": "session-token-missing"}, 1},
		{"sessiongate_requests_total", map[string]string{"route": "/other", "status": "502", "reason": ""}, 1},
		{"sessiongate_request_duration_seconds", map[string]string{"route": "/api"}, 4},
		{"sessiongate_upstream_duration_seconds", map[string]string{"route": "/api"}, 3},
		{"sessiongate_verification_duration_seconds", nil, 3},
		{"sessiongate_upstream_errors_total", map[string]string{"route": "/other", "kind": "dial"}, 1},
	} {
		if got := counterValue(t, s, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestReloadsAndConnections(t *testing.T) {
	s := New()
	if got := counterValue(t, s, "sessiongate_config_reloads_total", map[string]string{"result": ReloadRestartNeeded}); got != 0 {
		t.Fatalf("restart_needed before any reload: %v, want 0", got)
	}
	s.ObserveReload(ReloadInvalid)
	if got := counterValue(t, s, "sessiongate_config_last_reload_successful", nil); got != 0 {
		t.Fatalf("last reload successful after a refusal: %v", got)
	}
	s.ObserveReload(ReloadOK)
	if got := counterValue(t, s, "sessiongate_config_last_reload_successful", nil); got != 1 {
		t.Fatalf("last reload successful after an applied reload: %v", got)
	}
	s.ConnectionOpened(proxy.ConnWebSocket)
	s.ConnectionOpened(proxy.ConnWebSocket)
	s.ConnectionClosed(proxy.ConnWebSocket, proxy.ClosedClient, time.Second)
	if got := counterValue(t, s, "sessiongate_long_lived_connections_open", map[string]string{"kind": proxy.ConnWebSocket}); got != 1 {
		t.Fatalf("open websockets: %v, want 1", got)
	}
	if got := counterValue(t, s, "sessiongate_long_lived_connections_closed_total", map[string]string{"kind": proxy.ConnWebSocket, "reason": proxy.ClosedClient}); got != 1 {
		t.Fatalf("closed websockets: %v, want 1", got)
	}
	s.RegisterTLS(nil) // no tls: nothing registered
	if got := counterValue(t, s, "sessiongate_tls_certificate_expiry_timestamp_seconds", nil); got != -1 {
		t.Fatalf("TLS expiry without tls: %v", got)
	}
}
