package config

import "time"

// Connections bounds the long-lived connections the proxy passes through:
// WebSockets and streamed responses (server-sent events). See
// docs/sessions.md#long-lived-connections.
type Connections struct {
	// RecheckInterval is how often the session of an open connection is
	// re-checked with its route's session_check (on a strict route, one
	// Backend API call per session per interval). A revocation through
	// sessiongate (admin API, webhook, another replica through Redis, an
	// inactive status seen) closes the connection at once, without waiting
	// for it. Default 5s; between 10ms and 10m.
	RecheckInterval Duration `yaml:"recheck_interval"`
	// MaxLifetime closes every WebSocket (any upgraded connection) this
	// long after it opened, whatever its session. Default 0: none.
	MaxLifetime Duration `yaml:"max_lifetime"`
}

// Bounds of connections.recheck_interval.
const (
	MinRecheckInterval = 10 * time.Millisecond
	MaxRecheckInterval = 10 * time.Minute
)

// DefaultConnections returns the connections block's defaults.
func DefaultConnections() Connections {
	return Connections{RecheckInterval: Duration(5 * time.Second)}
}

func (c *Config) validateConnections(ps *problems) {
	cn := c.Connections
	switch {
	case cn.RecheckInterval <= 0:
		ps.add("connections.recheck_interval", "must be more than 0 (default 5s)")
	case cn.RecheckInterval < Duration(MinRecheckInterval):
		ps.add("connections.recheck_interval", "%s is less than %s", cn.RecheckInterval, Duration(MinRecheckInterval))
	case cn.RecheckInterval > Duration(MaxRecheckInterval):
		ps.add("connections.recheck_interval", "%s is more than %s: a revoked session's WebSocket would stay open that long",
			cn.RecheckInterval, Duration(MaxRecheckInterval))
	}
	if cn.MaxLifetime < 0 {
		ps.add("connections.max_lifetime", "%s is negative (0: no bound)", cn.MaxLifetime)
	}
}
