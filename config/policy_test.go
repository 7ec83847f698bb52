package config

import (
	"testing"

	"github.com/sessiongate/sessiongate/proxy"
	"github.com/sessiongate/sessiongate/sessioncheck"
)

// The file's spellings and the enums' parsers must agree, both ways: each
// constant parses to the enum whose String is that constant, the empty
// value is the documented default, and nothing else parses.
func TestRoutePolicySpellingsAreTheEnumsOwn(t *testing.T) {
	for _, name := range []string{AuthPublic, AuthOptional, AuthRequired} {
		a, ok := proxy.ParseAuth(name)
		if !ok || a.String() != name || (Route{Auth: name}).AuthPolicy() != a {
			t.Errorf("auth %q: parsed %v, %v", name, a, ok)
		}
	}
	for _, name := range []string{SessionCheckOff, SessionCheckCached, SessionCheckStrict} {
		m, ok := sessioncheck.ParseMode(name)
		if !ok || m.String() != name || (Route{SessionCheck: name}).SessionCheckMode() != m {
			t.Errorf("session_check %q: parsed %v, %v", name, m, ok)
		}
	}
	for _, name := range []string{OnErrorDeny, OnErrorAllow} {
		e, ok := sessioncheck.ParseOnError(name)
		if !ok || e.String() != name || (Route{OnSessionCheckError: name}).OnSessionCheckErrorPolicy() != e {
			t.Errorf("on_session_check_error %q: parsed %v, %v", name, e, ok)
		}
	}
	var r Route
	if r.AuthPolicy() != proxy.Required || r.SessionCheckMode() != sessioncheck.Off || r.OnSessionCheckErrorPolicy() != sessioncheck.Deny {
		t.Error("an unset key is not its default (required, off, deny)")
	}
	for _, bad := range []string{"Public", "public ", "none", "STRICT", "allow-all"} {
		if _, ok := proxy.ParseAuth(bad); ok {
			t.Errorf("ParseAuth(%q) accepted", bad)
		}
		if _, ok := sessioncheck.ParseMode(bad); ok {
			t.Errorf("ParseMode(%q) accepted", bad)
		}
		if _, ok := sessioncheck.ParseOnError(bad); ok {
			t.Errorf("ParseOnError(%q) accepted", bad)
		}
	}
}
