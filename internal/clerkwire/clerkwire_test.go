package clerkwire

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidSessionID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"sess_2abcDEF":                     true,
		"sess_RXz2k1NRoPqwn9ESUBwFDWyNEXh": true,
		"sess_1":                           true,
		"sess_" + strings.Repeat("a", 64):  true,
		"sess_" + strings.Repeat("a", 65):  false,
		"":                                 false,
		"sess_":                            false,
		"SESS_abc":                         false,
		"client_abc":                       false,
		"sess_a-b":                         false,
		"sess_a_b":                         false,
		"sess_1/../users":                  false,
		"sess_1?x=1":                       false,
		"sess_%2F":                         false,
		"sess_*":                           false,
		"sess_\x00x":                       false,
		"sess_é":                           false,
		" sess_abc":                        false,
		"sess_abc ":                        false,
	} {
		if got := ValidSessionID(id); got != want {
			t.Errorf("ValidSessionID(%q) = %v, want %v", id, got, want)
		}
	}
}

// FuzzValidSessionID holds ValidSessionID to the pattern SessionIDShape
// describes.
func FuzzValidSessionID(f *testing.F) {
	re := regexp.MustCompile(`^sess_[A-Za-z0-9]{1,64}$`)
	for _, s := range []string{"sess_1", "sess_", "sess_a-b", "sess_" + strings.Repeat("Z", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidSessionID(s), re.MatchString(s); got != want {
			t.Fatalf("ValidSessionID(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}

func TestOrgNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, full, short string }{
		{"admin", "org:admin", "admin"},
		{"org:admin", "org:admin", "admin"},
		{"docs:read", "org:docs:read", "docs:read"},
		{"org:docs:read", "org:docs:read", "docs:read"},
		{"", "", ""},
		{"org:", "org:", ""},
	} {
		if got := OrgName(tc.name); got != tc.full {
			t.Errorf("OrgName(%q) = %q, want %q", tc.name, got, tc.full)
		}
		if got := ShortOrgName(tc.name); got != tc.short {
			t.Errorf("ShortOrgName(%q) = %q, want %q", tc.name, got, tc.short)
		}
	}
	for _, tc := range []struct {
		have, want string
		same       bool
	}{
		{"org:admin", "admin", true},
		{"org:admin", "org:admin", true},
		{"org:admin", "member", false},
		{"org:admin", "org:member", false},
		{"admin", "admin", false}, // have always carries the prefix
		{"org:docs:read", "docs:read", true},
		{"org:adminx", "admin", false},
		{"", "", false},
	} {
		if got := SameOrgName(tc.have, tc.want); got != tc.same {
			t.Errorf("SameOrgName(%q, %q) = %v, want %v", tc.have, tc.want, got, tc.same)
		}
		if tc.want != "" && tc.same != (OrgName(tc.want) == tc.have) {
			t.Errorf("SameOrgName(%q, %q) disagrees with OrgName", tc.have, tc.want)
		}
	}
}
