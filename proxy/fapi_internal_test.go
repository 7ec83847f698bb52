package proxy

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// The redactor finds the secret however the body is cut into reads: one
// byte at a time, at the end, overlapping with a false start.
func TestRedactorAcrossReads(t *testing.T) {
	const secret = "sk_test_abcabcX"
	for _, tc := range []struct{ in, want string }{
		{"a " + secret + " b", "a [redacted] b"},
		{secret, "[redacted]"},
		{"x" + secret, "x[redacted]"},
		{"sk_test_abc" + secret + "sk_test_", "sk_test_abc[redacted]sk_test_"},
		{secret + secret, "[redacted][redacted]"},
		{"nothing here", "nothing here"},
		{"", ""},
	} {
		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"whole":      func(r io.Reader) io.Reader { return r },
			"one byte":   iotest.OneByteReader,
			"half reads": iotest.HalfReader,
			"data+EOF":   iotest.DataErrReader,
		} {
			found := 0
			x := &redactor{r: io.NopCloser(wrap(strings.NewReader(tc.in))), secret: []byte(secret), found: func() { found++ }}
			got, err := io.ReadAll(iotest.OneByteReader(x))
			if err != nil || string(got) != tc.want {
				t.Errorf("%s %q: %q %v, want %q", name, tc.in, got, err, tc.want)
			}
			if (found > 0) != strings.Contains(tc.in, secret) {
				t.Errorf("%s %q: found %d", name, tc.in, found)
			}
		}
	}
}
