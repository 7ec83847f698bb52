package clerktest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

var fixedNow = time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

func TestMintV2SessionTokenDefaults(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{Now: fixedClock})
	tok := inst.MustMint(t)
	p := parseToken(t, tok)

	if got, want := string(p.rawHeader), fmt.Sprintf(`{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":%q,"typ":"JWT"}`, inst.SigningKey().ID); got != want {
		t.Fatalf("header %s, want %s", got, want)
	}
	if got, want := keysOf(p.claims), []string{"azp", "exp", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"}; !slices.Equal(got, want) {
		t.Fatalf("claims %v, want %v", got, want)
	}
	if err := p.verifyRS256(inst.SigningKey().Public().Public); err != nil {
		t.Fatalf("signature: %v", err)
	}
	iat := fixedNow.Unix()
	for name, want := range map[string]string{
		"azp": `"http://localhost:3000"`, "iss": fmt.Sprintf("%q", inst.Issuer()), "sts": `"active"`, "v": "2",
		"fva": "[0,-1]", "iat": fmt.Sprint(iat), "exp": fmt.Sprint(iat + 60), "nbf": fmt.Sprint(iat - 5),
	} {
		if got := string(p.claims[name]); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	sub, sid := p.str(t, p.claims, "sub"), p.str(t, p.claims, "sid")
	if !strings.HasPrefix(sub, "user_") || len(sub) != 5+27 || !strings.HasPrefix(sid, "sess_") || len(sid) != 5+27 {
		t.Errorf("sub %q sid %q", sub, sid)
	}
	// Members are emitted sorted, as encoding/json does for maps.
	var names []string
	dec := json.NewDecoder(strings.NewReader(string(p.rawPayload)))
	dec.Token()
	for dec.More() {
		name, _ := dec.Token()
		names = append(names, name.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	if !slices.IsSorted(names) {
		t.Errorf("claims not sorted: %v", names)
	}

	sess, ok := inst.sessions.get(sid)
	if !ok {
		t.Fatalf("session %s not recorded", sid)
	}
	ms := fixedNow.UnixMilli()
	if sess.UserID != sub || sess.Status != "active" || !strings.HasPrefix(sess.ClientID, "client_") ||
		sess.CreatedAt != ms || sess.UpdatedAt != ms || sess.LastActiveAt != ms ||
		sess.ExpireAt != fixedNow.Add(7*24*time.Hour).UnixMilli() || sess.AbandonAt <= sess.ExpireAt {
		t.Errorf("session %+v", sess)
	}
	if again := parseToken(t, inst.MustMint(t)); again.str(t, again.claims, "sid") == sid || again.str(t, again.claims, "sub") == sub {
		t.Error("a second default token reused the session or user")
	}
}

func TestMintV1SessionToken(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{Now: fixedClock, AuthorizedParty: "https://app.example.com"})
	p := parseToken(t, inst.MustMint(t, WithVersion1(), WithOrg(Org{
		ID: "org_1", Slug: "acme", Role: "admin", Permissions: []string{"org:invoices:read", "org:sys_memberships:manage"},
	}), WithPending(), WithUserFeatures("beta"), WithPlan("u:free")))
	if got, want := keysOf(p.claims), []string{"azp", "exp", "fva", "iat", "iss", "nbf", "org_id", "org_permissions", "org_role", "org_slug", "sid", "sub"}; !slices.Equal(got, want) {
		t.Fatalf("claims %v, want %v", got, want)
	}
	for name, want := range map[string]string{
		"azp": `"https://app.example.com"`, "org_id": `"org_1"`, "org_slug": `"acme"`, "org_role": `"org:admin"`,
		"org_permissions": `["org:invoices:read","org:sys_memberships:manage"]`,
	} {
		if got := string(p.claims[name]); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if err := p.verifyRS256(inst.SigningKey().Public().Public); err != nil {
		t.Fatalf("signature: %v", err)
	}
}

// decodeOrgPermissions reverses Clerk's v2 encoding the way clerk/javascript
// does: fpm indexes the org-scoped entries of fea.
func decodeOrgPermissions(tb testing.TB, fea, per, fpm string) []string {
	tb.Helper()
	var orgFeatures []string
	for _, f := range strings.Split(fea, ",") {
		scope, name, _ := strings.Cut(f, ":")
		if strings.Contains(scope, "o") {
			orgFeatures = append(orgFeatures, name)
		}
	}
	perms := strings.Split(per, ",")
	masks := strings.Split(fpm, ",")
	if len(masks) != len(orgFeatures) {
		tb.Fatalf("fpm %q has %d masks for %d org features", fpm, len(masks), len(orgFeatures))
	}
	var out []string
	for i, m := range masks {
		mask, ok := new(big.Int).SetString(m, 10)
		if !ok {
			tb.Fatalf("fpm mask %q", m)
		}
		for j, perm := range perms {
			if mask.Bit(j) == 1 {
				out = append(out, "org:"+orgFeatures[i]+":"+perm)
			}
		}
	}
	return out
}

func TestMintV2OrgPermissionsRoundTrip(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	many := make([]string, 70) // masks wider than 64 bits
	for n := range many {
		many[n] = fmt.Sprintf("org:big:p%d", n)
	}
	tests := []struct {
		name          string
		perms         []string
		fea, per, fpm string
	}{
		{
			name: "three features and four permissions",
			perms: []string{"org:invoices:read", "org:invoices:manage", "org:reports:read",
				"org:billing:export", "org:reports:delete", "org:billing:read"},
			fea: "o:invoices,o:reports,o:billing,u:beta,u:gamma", per: "read,manage,export,delete", fpm: "3,9,5",
		},
		{name: "one permission", perms: []string{"org:posts:read"}, fea: "o:posts,u:beta,u:gamma", per: "read", fpm: "1"},
		{name: "seventy permissions", perms: many, fea: "o:big,u:beta,u:gamma",
			per: strings.Join(slices.Collect(func(yield func(string) bool) {
				for n := range 70 {
					yield(fmt.Sprintf("p%d", n))
				}
			}), ","),
			fpm: new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 70), big.NewInt(1)).String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := parseToken(t, inst.MustMint(t,
				WithOrg(Org{ID: "org_1", Slug: "acme", Role: "org:admin", Permissions: tt.perms}),
				WithUserFeatures("beta", "u:gamma"), WithPlan("o:pro")))
			if fea := p.str(t, p.claims, "fea"); fea != tt.fea {
				t.Errorf("fea %q, want %q", fea, tt.fea)
			}
			var o map[string]json.RawMessage
			if err := json.Unmarshal(p.claims["o"], &o); err != nil {
				t.Fatal(err)
			}
			if got := keysOf(o); !slices.Equal(got, []string{"fpm", "id", "per", "rol", "slg"}) {
				t.Errorf("o members %v", got)
			}
			if id, slg, rol := p.str(t, o, "id"), p.str(t, o, "slg"), p.str(t, o, "rol"); id != "org_1" || slg != "acme" || rol != "admin" {
				t.Errorf("o id %q slg %q rol %q", id, slg, rol)
			}
			per, fpm := p.str(t, o, "per"), p.str(t, o, "fpm")
			if per != tt.per || fpm != tt.fpm {
				t.Errorf("per %q fpm %q, want %q %q", per, fpm, tt.per, tt.fpm)
			}
			got := decodeOrgPermissions(t, tt.fea, per, fpm)
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.perms))
			if !slices.Equal(got, want) {
				t.Errorf("round trip %v, want %v", got, want)
			}
			if pla := p.str(t, p.claims, "pla"); pla != "o:pro" {
				t.Errorf("pla %q", pla)
			}
		})
	}
}

func TestMintRejectsMalformedPermission(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	for _, perm := range []string{"read", "org:read", "user:x:read", "org::read", "org:x:"} {
		if _, err := inst.Mint(WithOrg(Org{ID: "org_1", Permissions: []string{perm}})); err == nil {
			t.Errorf("permission %q accepted", perm)
		}
	}
}

func TestMintVariants(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{Now: fixedClock, TokenLifetime: 2 * time.Minute})
	iat := fixedNow.Unix()
	at := fixedNow.Add(-time.Hour)
	tests := []struct {
		name   string
		opts   []TokenOption
		cat    string
		claims []string          // exact member names
		values map[string]string // raw JSON values
	}{
		{
			name: "template", opts: []TokenOption{WithTemplate("hasura"), WithUser("user_t")}, cat: CategoryTemplate,
			claims: []string{"azp", "exp", "iat", "iss", "jti", "nbf", "sub"},
			values: map[string]string{"sub": `"user_t"`, "exp": fmt.Sprint(iat + 120)},
		},
		{
			name: "machine", opts: []TokenOption{WithMachine()}, cat: CategoryMachine,
			claims: []string{"exp", "iat", "iss", "jti", "nbf", "sub"},
		},
		{
			name: "pending without azp", opts: []TokenOption{WithPending(), WithAuthorizedParty("")}, cat: CategorySession,
			claims: []string{"exp", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"},
			values: map[string]string{"sts": `"pending"`},
		},
		{
			name: "impersonation", opts: []TokenOption{WithActor(Actor{Issuer: "https://dashboard.clerk.com", SessionID: "sess_imp", Subject: "user_admin", Type: "agent"})},
			cat:    CategorySession,
			claims: []string{"act", "azp", "exp", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"},
			values: map[string]string{"act": `{"iss":"https://dashboard.clerk.com","sid":"sess_imp","sub":"user_admin","type":"agent"}`},
		},
		{
			name: "times", opts: []TokenOption{WithIssuedAt(at), WithLifetime(10 * time.Second)}, cat: CategorySession,
			claims: []string{"azp", "exp", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"},
			values: map[string]string{"iat": fmt.Sprint(at.Unix()), "exp": fmt.Sprint(at.Unix() + 10), "nbf": fmt.Sprint(at.Unix() - 5)},
		},
		{
			name: "explicit exp and nbf", opts: []TokenOption{WithExpiry(at), WithNotBefore(at.Add(-time.Minute))}, cat: CategorySession,
			claims: []string{"azp", "exp", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"},
			values: map[string]string{"iat": fmt.Sprint(iat), "exp": fmt.Sprint(at.Unix()), "nbf": fmt.Sprint(at.Unix() - 60)},
		},
		{
			name: "user features only", opts: []TokenOption{WithUserFeatures("a", "ou:b")}, cat: CategorySession,
			claims: []string{"azp", "exp", "fea", "fva", "iat", "iss", "nbf", "sid", "sts", "sub", "v"},
			values: map[string]string{"fea": `"u:a,ou:b"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := parseToken(t, inst.MustMint(t, tt.opts...))
			if cat := p.str(t, p.header, "cat"); cat != tt.cat {
				t.Errorf("cat %q, want %q", cat, tt.cat)
			}
			if got := keysOf(p.claims); !slices.Equal(got, tt.claims) {
				t.Errorf("claims %v, want %v", got, tt.claims)
			}
			for name, want := range tt.values {
				if got := string(p.claims[name]); got != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
			if err := p.verifyRS256(&inst.SigningKey().Private.PublicKey); err != nil {
				t.Errorf("signature: %v", err)
			}
		})
	}
	if p := parseToken(t, inst.MustMint(t, WithMachine())); !strings.HasPrefix(p.str(t, p.claims, "sub"), "mch_") {
		t.Errorf("machine sub %s", p.claims["sub"])
	}
}

func TestMintSessions(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{Now: fixedClock})
	first := parseToken(t, inst.MustMint(t, WithUser("user_alice")))
	sid := first.str(t, first.claims, "sid")

	again := parseToken(t, inst.MustMint(t, WithSession(sid)))
	if sub := again.str(t, again.claims, "sub"); sub != "user_alice" {
		t.Errorf("reused session gave sub %q", sub)
	}
	if _, err := inst.Mint(WithSession(sid), WithUser("user_bob")); err == nil {
		t.Error("minted a token for another user's session")
	}
	if _, ok := inst.sessions.setStatus(sid, statusPending, fixedNow); !ok {
		t.Fatal("setStatus on a known session failed")
	}
	if p := parseToken(t, inst.MustMint(t, WithSession(sid))); p.str(t, p.claims, "sts") != "pending" {
		t.Errorf("sts %s for a pending session", p.claims["sts"])
	}

	explicit := parseToken(t, inst.MustMint(t, WithSession("sess_explicit"), WithUser("user_carol"), WithPending()))
	sess, ok := inst.sessions.get("sess_explicit")
	if !ok || sess.UserID != "user_carol" || sess.Status != "pending" || explicit.str(t, explicit.claims, "sts") != "pending" {
		t.Errorf("explicit session %+v (found %v)", sess, ok)
	}
	if err := inst.sessions.create(sess); err == nil {
		t.Error("create accepted a duplicate session id")
	}
	if _, ok := inst.sessions.setStatus("sess_none", statusRevoked, fixedNow); ok {
		t.Error("setStatus on an unknown session succeeded")
	}
	if p := parseToken(t, inst.MustMint(t, WithTemplate("t"))); p.claims["sid"] != nil {
		t.Error("template token has a sid")
	}
}

func TestWithAlgorithm(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	key := inst.SigningKey()
	der, err := x509.MarshalPKIXPublicKey(&key.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		alg    string
		verify func(p parsedToken) error
	}{
		{"RS256", func(p parsedToken) error { return p.verifyRS256(&key.Private.PublicKey) }},
		{"RS384", func(p parsedToken) error {
			d := sha512.Sum384([]byte(p.signingInput))
			return rsa.VerifyPKCS1v15(&key.Private.PublicKey, crypto.SHA384, d[:], p.sig)
		}},
		{"RS512", func(p parsedToken) error {
			d := sha512.Sum512([]byte(p.signingInput))
			return rsa.VerifyPKCS1v15(&key.Private.PublicKey, crypto.SHA512, d[:], p.sig)
		}},
		{"HS256", func(p parsedToken) error {
			m := hmac.New(sha256.New, der)
			m.Write([]byte(p.signingInput))
			if !hmac.Equal(m.Sum(nil), p.sig) {
				return fmt.Errorf("HMAC mismatch")
			}
			return nil
		}},
		{"HS512", func(p parsedToken) error {
			m := hmac.New(sha512.New, der)
			m.Write([]byte(p.signingInput))
			if !hmac.Equal(m.Sum(nil), p.sig) {
				return fmt.Errorf("HMAC mismatch")
			}
			return nil
		}},
		{"none", func(p parsedToken) error {
			if len(p.sig) != 0 {
				return fmt.Errorf("signature of %d bytes", len(p.sig))
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			t.Parallel()
			tok := inst.MustMint(t, WithAlgorithm(tt.alg))
			p := parseToken(t, tok)
			if alg := p.str(t, p.header, "alg"); alg != tt.alg {
				t.Errorf("header alg %q", alg)
			}
			if err := tt.verify(p); err != nil {
				t.Errorf("%s: %v", tt.alg, err)
			}
		})
	}
	if _, err := inst.Mint(WithAlgorithm("ES256")); err == nil {
		t.Error("ES256 accepted")
	}
}

func TestWithSigningKeyAndHeaderEdits(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	foreign := sharedKey(t, 1)
	p := parseToken(t, inst.MustMint(t, WithSigningKey(foreign)))
	if kid := p.str(t, p.header, "kid"); kid != foreign.ID {
		t.Errorf("kid %q, want the foreign key's %q", kid, foreign.ID)
	}
	if p.verifyRS256(&foreign.Private.PublicKey) != nil || p.verifyRS256(&inst.SigningKey().Private.PublicKey) == nil {
		t.Error("not signed by the foreign key alone")
	}

	p = parseToken(t, inst.MustMint(t, WithSigningKey(foreign), WithHeader("kid", inst.SigningKey().ID),
		WithHeader("alg", "RS384"), WithoutHeader("typ"), WithoutHeader("cat"), WithHeader("jku", "https://evil.example/jwks")))
	if got, want := string(p.rawHeader), fmt.Sprintf(`{"alg":"RS384","jku":"https://evil.example/jwks","kid":%q}`, inst.SigningKey().ID); got != want {
		t.Errorf("header %s, want %s", got, want)
	}
	if p.verifyRS256(&foreign.Private.PublicKey) != nil {
		t.Error("WithHeader(alg) changed the signing algorithm")
	}
}

func TestWithClaimValues(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	tests := []struct {
		name string
		opts []TokenOption
		want map[string]string // raw value; "" means absent
	}{
		{"string exp", []TokenOption{WithClaim("exp", json.RawMessage(`"123"`))}, map[string]string{"exp": `"123"`}},
		{"null azp", []TokenOption{WithClaim("azp", json.RawMessage("null"))}, map[string]string{"azp": "null"}},
		{"raw kept verbatim", []TokenOption{WithClaim("x", json.RawMessage(`{ "b" : 1 }`))}, map[string]string{"x": `{ "b" : 1 }`}},
		{"marshalled value", []TokenOption{WithClaim("fva", []int{3, 4}), WithClaim("url", "https://a/?b=<c>&d")},
			map[string]string{"fva": "[3,4]", "url": `"https://a/?b=<c>&d"`}},
		{"later edit wins", []TokenOption{WithClaim("v", 3), WithClaim("v", "two")}, map[string]string{"v": `"two"`}},
		{"removed claim", []TokenOption{WithoutClaim("exp"), WithoutClaim("sid")}, map[string]string{"exp": "", "sid": ""}},
		{"re-added after removal", []TokenOption{WithoutClaim("sub"), WithClaim("sub", "mch_x")}, map[string]string{"sub": `"mch_x"`}},
		{"raw header value", []TokenOption{WithHeader("kid", json.RawMessage("42"))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := parseToken(t, inst.MustMint(t, tt.opts...))
			for name, want := range tt.want {
				raw, ok := p.claims[name]
				if want == "" && ok {
					t.Errorf("%s present: %s", name, raw)
				}
				if want != "" && string(raw) != want {
					t.Errorf("%s = %s, want %s", name, raw, want)
				}
			}
			if want := `{ "b" : 1 }`; tt.name == "raw kept verbatim" && !strings.Contains(string(p.rawPayload), want) {
				t.Errorf("payload %s does not contain %s", p.rawPayload, want)
			}
			if tt.name == "raw header value" && string(p.header["kid"]) != "42" {
				t.Errorf("header kid %s", p.header["kid"])
			}
		})
	}
}

func TestWithRawHeaderAndPayload(t *testing.T) {
	t.Parallel()
	inst := start(t, Options{})
	header := []byte(`{"alg":"RS256","kid":"x","kid":"` + inst.SigningKey().ID + `"}`)
	payload := []byte(`{"sub":"user_a","sub":"user_b", "exp":1}`)
	tok := inst.MustMint(t, WithRawHeader(header), WithRawPayload(payload), WithClaim("ignored", 1))
	p := parseToken(t, tok)
	if string(p.rawHeader) != string(header) || string(p.rawPayload) != string(payload) {
		t.Fatalf("raw parts changed: %s %s", p.rawHeader, p.rawPayload)
	}
	if err := p.verifyRS256(&inst.SigningKey().Private.PublicKey); err != nil {
		t.Fatal(err)
	}
	if tok2 := Sign(header, payload, inst.SigningKey(), "RS256"); tok2 != tok {
		t.Error("Sign differs from Mint with raw parts (PKCS #1 v1.5 is deterministic)")
	}
	if tok := Sign([]byte("{}"), []byte("{}"), nil, "none"); tok != "e30.e30." {
		t.Errorf("unsigned token %q", tok)
	}
}

func TestSigningKeys(t *testing.T) {
	t.Parallel()
	key := sharedKey(t, 0)
	block, rest := pem.Decode([]byte(key.PublicPEM()))
	if block == nil || block.Type != "PUBLIC KEY" || len(rest) != 0 {
		t.Fatalf("PEM %q", key.PublicPEM())
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !key.Private.PublicKey.Equal(pub) {
		t.Fatalf("PEM key: %v", err)
	}
	jk := key.Public()
	if jk.ID != key.ID || jk.Algorithm != "RS256" || !key.Private.PublicKey.Equal(jk.Public) || jk.Retired() {
		t.Fatalf("Public() %+v", jk)
	}
	if key.Public() == jk {
		t.Error("Public returned a shared *jwks.Key")
	}
	if !strings.HasPrefix(key.ID, "ins_") || len(key.ID) != 4+27 {
		t.Errorf("kid %q", key.ID)
	}
	if _, err := NewSigningKey("k", "HS256"); err == nil {
		t.Error("NewSigningKey accepted HS256")
	}
}

func BenchmarkMint(b *testing.B) {
	inst := start(b, Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inst.Mint(WithSession("sess_bench"), WithOrg(Org{ID: "org_1", Permissions: []string{"org:a:read"}})); err != nil {
			b.Fatal(err)
		}
	}
}
