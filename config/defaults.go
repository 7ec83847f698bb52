package config

import "time"

// Defaults returns the configuration used where the file, the environment
// and the flags say nothing (docs/configuration.md). Each call returns fresh values.
func Defaults() Config {
	access := true
	return Config{
		Listen:      ":8080",
		AdminListen: "127.0.0.1:9090",
		Clerk: Clerk{
			APIURL:    "https://api.clerk.com",
			ClockSkew: Duration(5 * time.Second),
		},
		JWKS: JWKS{
			RefreshInterval:    Duration(5 * time.Minute),
			MinRefreshInterval: Duration(10 * time.Second),
			MaxStale:           Duration(24 * time.Hour),
		},
		Cache: Cache{
			Tokens:     100000,
			Sessions:   100000,
			SessionTTL: Duration(10 * time.Second),

			MachineTTL:         Duration(10 * time.Second),
			MachineNegativeTTL: Duration(10 * time.Second),
		},
		Machine:    Machine{VerifyConcurrency: 16, MissRate: 10, MissBurst: 20},
		Headers:    Headers{Prefix: "X-Sessiongate-"},
		Revocation: Revocation{Store: "memory", TTL: Duration(time.Hour)},
		Server: Server{
			ReadHeaderTimeout: Duration(10 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			ShutdownTimeout:   Duration(30 * time.Second),
			MaxHeaderBytes:    65536,
			UpstreamTimeout:   Duration(60 * time.Second),
			DialTimeout:       Duration(5 * time.Second),
		},
		Log:         Log{Level: "info", Access: &access},
		Connections: DefaultConnections(), // connections.go
		Tracing:     DefaultTracing(),     // tracing.go
	}
}

// DefaultRoute returns a route's defaults: auth required, session_check off,
// on_session_check_error deny, forward_token true; handshake is left unset
// (see Route.HandshakeEnabled).
func DefaultRoute() Route {
	forward := true
	return Route{
		Auth:                AuthRequired,
		SessionCheck:        SessionCheckOff,
		OnSessionCheckError: OnErrorDeny,
		ForwardToken:        &forward,
	}
}
