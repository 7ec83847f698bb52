package config

import (
	"github.com/sessiongate/sessiongate/proxy"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// The route keys auth, session_check and on_session_check_error are kept
// as the strings the file holds (so that a problem names the key and the
// value as written), and read into their enums only through the enums'
// own parsers: proxy.ParseAuth, sessioncheck.ParseMode and
// sessioncheck.ParseOnError. The methods below are the one translation;
// call them on a validated Config.

// AuthPolicy is the route's auth key as the proxy's policy.
func (r Route) AuthPolicy() proxy.Auth {
	a, _ := proxy.ParseAuth(r.Auth)
	return a
}

// SessionCheckMode is the route's session_check key as a mode.
func (r Route) SessionCheckMode() sessioncheck.Mode {
	m, _ := sessioncheck.ParseMode(r.SessionCheck)
	return m
}

// OnSessionCheckErrorPolicy is the route's on_session_check_error key.
func (r Route) OnSessionCheckErrorPolicy() sessioncheck.OnError {
	e, _ := sessioncheck.ParseOnError(r.OnSessionCheckError)
	return e
}
