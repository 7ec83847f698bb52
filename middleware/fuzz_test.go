package middleware_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

// The fuzz targets run in the deterministic corpus environment
// (corpus_env_test.go): the hostile corpus seeds them, and a token the Gate
// accepts must be one of the harness's own valid tokens, since the fuzzer
// cannot sign.

func seedTokens(tb testing.TB, e *corpusEnv) (hostile []string, valid map[string]bool) {
	valid = map[string]bool{}
	for _, tok := range e.validTokens(tb) {
		valid[tok] = true
	}
	for _, c := range hostileCorpus(tb, e) {
		hostile = append(hostile, c.token)
	}
	return hostile, valid
}

// FuzzVerify feeds arbitrary strings to Gate.Verify. It must never panic;
// a rejection is a 401 reason of the contract whose message echoes no token
// segment; verifying twice gives the same answer (the verified-token cache
// agrees with a cold verification); and an accepted token must be one of the
// valid tokens the harness signed.
func FuzzVerify(f *testing.F) {
	e := newCorpusEnv(f)
	hostile, valid := seedTokens(f, e)
	for _, tok := range hostile {
		f.Add(tok)
	}
	for tok := range valid {
		f.Add(tok)
	}
	known := map[middleware.Reason]bool{}
	for _, r := range middleware.Reasons() {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, tok string) {
		ctx := context.Background()
		c, err := e.gate.Verify(ctx, tok)
		c2, err2 := e.gate.Verify(ctx, tok)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("two verifications disagree: %v / %v", err, err2)
		}
		if err == nil {
			if !valid[tok] {
				t.Fatalf("accepted a token the harness did not sign: %q (sub %q)", tok, c.Subject)
			}
			if c2.Subject != c.Subject || c.Subject != corpusUser || c.SessionID != corpusSID {
				t.Fatalf("claims %+v / %+v", c, c2)
			}
			return
		}
		status, reason, msg := middleware.Outcome(err)
		_, reason2, _ := middleware.Outcome(err2)
		if reason != reason2 {
			t.Fatalf("two verifications disagree: %s / %s", reason, reason2)
		}
		if !known[reason] || status != http.StatusUnauthorized {
			t.Fatalf("rejection %d %q is not a 401 of the contract", status, reason)
		}
		if tok != "" && reason == middleware.ReasonSessionTokenMissing {
			t.Fatalf("a non-empty token reported as missing")
		}
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && (strings.Contains(msg, part) || strings.Contains(err.Error(), part)) {
				t.Fatalf("the error echoes a token segment: %q", err)
			}
		}
	})
}

// FuzzClaims signs arbitrary payload bytes with the instance's key (a claim
// set Clerk could have signed) and verifies the token: never a panic, and
// any accepted claim set must satisfy every claim check of the Gate,
// checked here independently with encoding/json: strict JSON without
// duplicate members, claims of the right types, sub user_…, sid sess_…, the
// exact issuer and party, exp/nbf/iat within the skew, sts active, and the
// decoded v1/v2 organization claims consistent with the payload.
func FuzzClaims(f *testing.F) {
	e := newCorpusEnv(f)
	hostile, valid := seedTokens(f, e)
	for _, tok := range append(hostile, mapKeys(valid)...) {
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				f.Add(b)
			}
		}
	}
	for _, extra := range []string{
		`"o":{"id":"org_1","slg":"acme","rol":"admin","per":"read,write,manage","fpm":"3,4"},"fea":"o:docs,u:export,o:billing"`,
		`"o":{"id":"org_1","rol":"org:admin","per":"a","fpm":"340282366920938463463374607431768211457"},"fea":"o:x"`,
		`"o":{"id":"","slg":"ghost","rol":"admin"}`,
		`"o":{"id":"org_1","fpm":"-1","per":"a"},"fea":"o:x"`,
		`"o":{"id":"org_1","fpm":"1,1,1,1","per":"a,b"},"fea":"ou:x,u:y,:z,o:"`,
		`"act":{"iss":"https://x","sid":"sess_a","sub":"user_admin","type":"agent"}`,
		`"fva":[0,-1]`, `"fva":[9223372036854775807,-9223372036854775808]`,
		`"pla":"o:pro","aud":["a"]`, `"org_id":"org_1","org_role":"admin","org_permissions":["org:a:b"]`,
	} {
		f.Add(rawClaims(extra))
	}
	f.Add([]byte(strings.Replace(string(rawClaims()), `"v":2`, `"v":1,"org_id":"org_v1","org_slug":"s","org_role":"basic_member","org_permissions":["org:a:b"]`, 1)))

	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 8<<10 {
			return
		}
		tok := signRaw(corpusHeader, payload)
		c, err := e.gate.Verify(context.Background(), tok)
		if err != nil {
			if _, reason, _ := middleware.Outcome(err); reason == middleware.ReasonSessionTokenMissing {
				t.Fatal("a signed token reported as missing")
			}
			return
		}
		checkAcceptedClaims(t, payload, c)
	})
}

var intRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

func checkAcceptedClaims(t *testing.T, payload []byte, c *middleware.Claims) {
	t.Helper()
	if !utf8.Valid(payload) || !json.Valid(payload) {
		t.Fatalf("accepted a payload that is not strict JSON: %q", payload)
	}
	if dup := duplicateMember(payload); dup != "" {
		t.Fatalf("accepted a payload with the member %q twice: %q", dup, payload)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatalf("accepted a payload that is not an object: %q", payload)
	}
	present := func(name string) bool { v, ok := m[name]; return ok && string(bytes.TrimSpace(v)) != "null" }
	str := func(name string) string {
		if !present(name) {
			return ""
		}
		var s string
		if err := json.Unmarshal(m[name], &s); err != nil {
			t.Fatalf("accepted %s of the wrong type: %s", name, m[name])
		}
		return s
	}
	num := func(name string) (int64, bool) {
		if !present(name) {
			return 0, false
		}
		raw := string(bytes.TrimSpace(m[name]))
		v, err := strconv.ParseInt(raw, 10, 64)
		if !intRE.MatchString(raw) || err != nil {
			t.Fatalf("accepted %s that is not an int64: %s", name, raw)
		}
		return v, true
	}
	now := corpusNow.Unix()
	const skew = 5
	exp, ok := num("exp")
	// Dates a time.Time cannot hold exactly are refused (years 1 to 9999).
	const maxDate = 253402300799
	if !ok || now >= exp+skew || exp > maxDate {
		t.Fatalf("accepted exp %d (present %v) at now %d", exp, ok, now)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, ok := num(name); ok && (v < -62135596800 || v > maxDate) {
			t.Fatalf("accepted %s %d outside years 1 to 9999", name, v)
		}
	}
	if nbf, ok := num("nbf"); ok && nbf > now+skew {
		t.Fatalf("accepted nbf %d at now %d", nbf, now)
	}
	if iat, ok := num("iat"); ok && iat > now+skew {
		t.Fatalf("accepted iat %d at now %d", iat, now)
	}
	if iss := str("iss"); iss != corpusIssuer || c.Issuer != iss {
		t.Fatalf("accepted iss %q (claims %q)", iss, c.Issuer)
	}
	if sub := str("sub"); !strings.HasPrefix(sub, "user_") || len(sub) == 5 || c.Subject != sub {
		t.Fatalf("accepted sub %q (claims %q)", sub, c.Subject)
	}
	if sid := str("sid"); !strings.HasPrefix(sid, "sess_") || len(sid) == 5 || c.SessionID != sid {
		t.Fatalf("accepted sid %q (claims %q)", sid, c.SessionID)
	}
	if azp := str("azp"); azp != corpusParty || c.AuthorizedParty != azp {
		t.Fatalf("accepted azp %q (claims %q)", azp, c.AuthorizedParty)
	}
	// str gives "" for an absent sts; an explicit "" is refused by the Gate.
	if sts := str("sts"); sts != "active" && sts != "" || c.SessionStatus != sts {
		t.Fatalf("accepted sts %q (claims %q) without AllowPending", sts, c.SessionStatus)
	}
	for _, name := range []string{"jti", "pla", "fea"} {
		str(name)
	}
	v, hasV := num("v")
	v2 := hasV && v >= 2
	if (v2 && int64(c.Version) != v) || (!v2 && c.Version != 1) {
		t.Fatalf("version %d for v=%d (present %v)", c.Version, v, hasV)
	}
	if present("fva") {
		var fva []json.RawMessage
		if err := json.Unmarshal(m["fva"], &fva); err != nil || len(fva) != 2 {
			t.Fatalf("accepted fva %s", m["fva"])
		}
		for _, x := range fva {
			if _, err := strconv.ParseInt(string(bytes.TrimSpace(x)), 10, 64); err != nil || !intRE.MatchString(string(bytes.TrimSpace(x))) {
				t.Fatalf("accepted fva %s", m["fva"])
			}
		}
		if c.FactorVerificationAge == nil {
			t.Fatal("fva present but not decoded")
		}
	}
	var o struct {
		ID  *string `json:"id"`
		Slg *string `json:"slg"`
		Rol *string `json:"rol"`
		Per *string `json:"per"`
		Fpm *string `json:"fpm"`
	}
	if present("o") {
		if err := json.Unmarshal(m["o"], &o); err != nil || bytes.TrimSpace(m["o"])[0] != '{' {
			t.Fatalf("accepted o %s: %v", m["o"], err)
		}
	}
	if present("act") {
		var a struct{ Iss, Sid, Sub, Type *string }
		if err := json.Unmarshal(m["act"], &a); err != nil || bytes.TrimSpace(m["act"])[0] != '{' {
			t.Fatalf("accepted act %s: %v", m["act"], err)
		}
		if c.Actor == nil || (a.Sub != nil && c.Actor.Subject != *a.Sub) {
			t.Fatalf("act %s decoded as %+v", m["act"], c.Actor)
		}
	}
	if present("org_permissions") {
		var perms []string
		if err := json.Unmarshal(m["org_permissions"], &perms); err != nil || bytes.TrimSpace(m["org_permissions"])[0] != '[' {
			t.Fatalf("accepted org_permissions %s", m["org_permissions"])
		}
	}
	if present("aud") {
		var s string
		var ss []string
		if json.Unmarshal(m["aud"], &s) != nil && (json.Unmarshal(m["aud"], &ss) != nil || bytes.TrimSpace(m["aud"])[0] != '[') {
			t.Fatalf("accepted aud %s", m["aud"])
		}
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	wantOrg := str("org_id")
	if v2 {
		wantOrg = deref(o.ID)
	}
	if c.OrgID != wantOrg {
		t.Fatalf("org id %q, want %q (v2 %v)", c.OrgID, wantOrg, v2)
	}
	if c.OrgID == "" && (c.OrgSlug != "" || c.OrgRole != "" || len(c.OrgPermissions) > 0) {
		t.Fatalf("organization details without an organization: %+v", c)
	}
	if c.OrgRole != "" && !strings.HasPrefix(c.OrgRole, "org:") {
		t.Fatalf("org role %q without the org: prefix", c.OrgRole)
	}
	if v2 {
		for _, p := range c.OrgPermissions {
			if parts := strings.Split(p, ":"); len(parts) != 3 || parts[0] != "org" || parts[1] == "" || parts[2] == "" {
				t.Fatalf("v2 permission %q is not org:<feature>:<permission>", p)
			}
		}
	}
}

// duplicateMember returns a member name that appears twice in one object
// of data (after unescaping, compared as encoding/json matches names to
// fields: strings.EqualFold), found with encoding/json's tokenizer and a
// pairwise comparison: an implementation independent of the Gate's reader.
func duplicateMember(data []byte) string {
	type frame struct {
		obj     bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*frame
	done := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			return ""
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			if dl, ok := tok.(json.Delim); ok && dl == '}' {
				stack = stack[:n-1]
				done()
				continue
			}
			k, _ := tok.(string)
			for prev := range stack[n-1].keys {
				if strings.EqualFold(prev, k) {
					return k
				}
			}
			stack[n-1].keys[k] = true
			stack[n-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, wantKey: true, keys: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			done()
		default:
			done()
		}
	}
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// roundTrip answers 200 for every upstream request, in memory.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzExtractToken builds requests with arbitrary Authorization headers (one
// or two) and Cookie lines and runs them through ExtractToken, then through
// the whole proxy. Extraction must follow ExtractToken's rules exactly (checked
// against an independent reading of the request with net/http's own cookie
// parser), nothing may panic or answer 5xx, and a request that reaches the
// upstream must carry one of the harness's valid tokens.
func FuzzExtractToken(f *testing.F) {
	e := newCorpusEnv(f)
	hostile, valid := seedTokens(f, e)
	good := mapKeys(valid)[0]
	f.Add("Bearer "+good, "", "", "")
	f.Add("bearer  "+good+"  ", "", "", "")
	f.Add("Bearer\t"+good, "", "", "")
	f.Add("Bearer", "", "__session="+good, "")
	f.Add("Bearer ", "", "", "")
	f.Add("Token "+good, "", "__session="+good, "")
	f.Add("Bearer "+good, "Bearer "+good, "", "")
	f.Add("", "", "__session=; __session="+good, "")
	f.Add("", "", `__session="`+good+`"`, "")
	f.Add("", "", "a=b; __session="+good+"; __session=x", "__session=y")
	f.Add("", "", "__session_abc="+good, "")
	f.Add("Basic dXNlcjpwYXNz", "", "__session="+good, "")
	for i, tok := range hostile {
		if len(tok) > 2048 {
			continue
		}
		if i%2 == 0 {
			f.Add("Bearer "+tok, "", "", "")
		} else {
			f.Add("", "", "__session="+tok, "")
		}
	}
	upstreamOK := roundTrip(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	})
	up, _ := url.Parse("http://upstream.invalid")
	// Without the verified-token cache: a cache hit or miss would make the
	// same input cover different code on its first and later runs, and the
	// fuzzer would spend its time minimizing "new" inputs that are not.
	cfg := gateConfig(e.keys)
	cfg.TokenCacheSize = -1
	gate, err := middleware.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{Gate: gate, Transport: upstreamOK, Routes: []proxy.Route{
		{Path: "/", Upstream: up, ForwardToken: true},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth1, auth2, cookie1, cookie2 string) {
		r := httptest.NewRequest("GET", "http://app.example.com/x", nil)
		var auths []string
		for _, a := range []string{auth1, auth2} {
			if a != "" {
				auths = append(auths, a)
			}
		}
		if len(auths) > 0 {
			r.Header["Authorization"] = auths
		}
		var cookies []string
		for _, c := range []string{cookie1, cookie2} {
			if c != "" {
				cookies = append(cookies, c)
			}
		}
		if len(cookies) > 0 {
			r.Header["Cookie"] = cookies
		}
		tok, src, err := middleware.ExtractToken(r)

		// The independent reading of ExtractToken's rules.
		var wantTok string
		wantSrc := middleware.SourceNone
		if len(auths) > 1 {
			if err == nil || src != middleware.SourceHeader || tok != "" {
				t.Fatalf("two Authorization headers: %q %v %v", tok, src, err)
			}
			if _, reason, _ := middleware.Outcome(err); reason != middleware.ReasonTokenInvalid {
				t.Fatalf("two Authorization headers: reason %s", reason)
			}
		} else {
			if err != nil {
				t.Fatalf("ExtractToken: %v", err)
			}
			if len(auths) == 1 {
				if scheme, rest, ok := strings.Cut(auths[0], " "); ok && strings.EqualFold(scheme, "bearer") {
					wantTok = strings.Trim(rest, " ")
				}
			}
			if wantTok != "" {
				wantSrc = middleware.SourceHeader
			} else if c, err := r.Cookie(middleware.SessionCookie); err == nil && c.Value != "" {
				wantTok, wantSrc = c.Value, middleware.SourceCookie
			}
			if tok != wantTok || src != wantSrc {
				t.Fatalf("ExtractToken = %q %v, want %q %v", tok, src, wantTok, wantSrc)
			}
			if strings.HasPrefix(tok, " ") || strings.HasSuffix(tok, " ") {
				t.Fatalf("token with surrounding spaces %q", tok)
			}
		}

		w := httptest.NewRecorder()
		px.ServeHTTP(w, r)
		switch w.Code {
		case 200:
			if !valid[tok] || err != nil {
				t.Fatalf("the upstream was reached with token %q from %v", tok, src)
			}
		case 401:
			if valid[tok] && err == nil {
				t.Fatalf("a valid token was refused: %s", w.Body)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
