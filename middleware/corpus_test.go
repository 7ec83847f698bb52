package middleware_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/middleware"
	"github.com/sessiongate/sessiongate/proxy"
)

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func dec(tb testing.TB, seg string) string {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// respell returns seg with its last character's lowest bit flipped. When
// the segment's length is not a multiple of 4 that bit is padding: the same
// bytes, spelled differently (strict decoding refuses it).
func respell(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[i^1])
}

// hostileCase is one token the Gate must reject with reason.
type hostileCase struct {
	name   string
	token  string
	reason middleware.Reason
}

// hostileCorpus builds the corpus (docs/security.md lists what it covers).
// Every token is rejected for exactly one reason: the first failing check in
// the order of docs/reason-codes.md.
func hostileCorpus(tb testing.TB, e *corpusEnv) []hostileCase {
	tb.Helper()
	now := corpusNow
	mint := func(opts ...clerktest.TokenOption) string { return e.mint(tb, opts...) }
	raw := func(payload []byte) string { return mint(clerktest.WithRawPayload(payload)) }
	rawHdr := func(h string) string { return mint(clerktest.WithRawHeader([]byte(h))) }
	claim := func(name, value string) string { return mint(clerktest.WithClaim(name, rawJSON(value))) }
	valid := mint()
	p := strings.Split(valid, ".")
	other := mint(clerktest.WithClaim("jti", "another"))
	op := strings.Split(other, ".")
	payload := dec(tb, p[1])
	unix := func(d time.Duration) int64 { return now.Add(d).Unix() }

	// A payload whose base64url length leaves padding bits, for respelling.
	var padded []string
	for n := 0; n < 4 && padded == nil; n++ {
		t := mint(clerktest.WithClaim("pad", strings.Repeat("p", n)))
		if parts := strings.Split(t, "."); len(parts[1])%4 != 0 && len(parts[0])%4 != 0 {
			padded = parts
		}
	}
	if padded == nil {
		tb.Fatal("no token with padding bits in both header and payload")
	}
	stdAlphabet := strings.NewReplacer("-", "+", "_", "/").Replace(valid)
	if stdAlphabet == valid {
		tb.Fatal("the valid token has no - or _ to respell")
	}
	sigBytes, _ := base64.RawURLEncoding.DecodeString(p[2])
	flipped := append([]byte{}, sigBytes...)
	flipped[len(flipped)/2] ^= 0x01
	var indented bytes.Buffer
	if err := json.Indent(&indented, []byte(payload), "", "  "); err != nil {
		tb.Fatal(err)
	}

	jwkOfAttacker := map[string]any{"kty": "RSA", "kid": corpusAttacker.ID, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(corpusAttacker.Private.N.Bytes()), "e": "AQAB"}
	atk := func(opts ...clerktest.TokenOption) string {
		return mint(append([]clerktest.TokenOption{clerktest.WithSigningKey(corpusAttacker)}, opts...)...)
	}

	R := struct {
		Invalid, Alg, Sig, Kid, Expired, NotYet, IatFuture, Issuer, Parties, Type, Missing middleware.Reason
	}{
		middleware.ReasonTokenInvalid, middleware.ReasonTokenInvalidAlgorithm, middleware.ReasonTokenInvalidSignature,
		middleware.ReasonKidMismatch, middleware.ReasonTokenExpired, middleware.ReasonTokenNotActiveYet,
		middleware.ReasonTokenIatInTheFuture, middleware.ReasonTokenInvalidIssuer, middleware.ReasonTokenInvalidParties,
		middleware.ReasonTokenTypeMismatch, middleware.ReasonSessionTokenMissing,
	}
	return []hostileCase{
		// alg: none in every case, algorithm confusion, algorithms never allowed.
		{name: "alg none", token: mint(clerktest.WithAlgorithm("none")), reason: R.Alg},
		{name: "alg None", token: mint(clerktest.WithAlgorithm("none"), clerktest.WithHeader("alg", "None")), reason: R.Alg},
		{name: "alg NONE", token: mint(clerktest.WithAlgorithm("none"), clerktest.WithHeader("alg", "NONE")), reason: R.Alg},
		{name: "alg none with a signature", token: mint(clerktest.WithHeader("alg", "none")), reason: R.Alg},
		{name: "alg none without kid", token: mint(clerktest.WithAlgorithm("none"), clerktest.WithoutHeader("kid")), reason: R.Alg},
		{name: "HS256 keyed with the RSA public key", token: mint(clerktest.WithAlgorithm("HS256")), reason: R.Alg},
		{name: "HS384 keyed with the RSA public key", token: mint(clerktest.WithAlgorithm("HS384")), reason: R.Alg},
		{name: "HS512 keyed with the RSA public key", token: mint(clerktest.WithAlgorithm("HS512")), reason: R.Alg},
		{name: "alg PS256", token: mint(clerktest.WithHeader("alg", "PS256")), reason: R.Alg},
		{name: "alg ES256", token: mint(clerktest.WithHeader("alg", "ES256")), reason: R.Alg},
		{name: "alg EdDSA", token: mint(clerktest.WithHeader("alg", "EdDSA")), reason: R.Alg},
		{name: "alg RS512 not in the allowlist", token: mint(clerktest.WithAlgorithm("RS512")), reason: R.Alg},
		{name: "alg lower-case rs256", token: mint(clerktest.WithHeader("alg", "rs256")), reason: R.Alg},
		{name: "alg with a trailing space", token: mint(clerktest.WithHeader("alg", "RS256 ")), reason: R.Alg},
		{name: "alg missing", token: mint(clerktest.WithoutHeader("alg")), reason: R.Alg},
		{name: "alg a number", token: mint(clerktest.WithHeader("alg", 256)), reason: R.Invalid},
		{name: "alg an array", token: mint(clerktest.WithHeader("alg", []string{"RS256"})), reason: R.Invalid},
		{name: "alg null", token: mint(clerktest.WithHeader("alg", rawJSON("null"))), reason: R.Invalid},
		{name: "alg RS384 with an RS256 key (key pin)", token: mint(clerktest.WithAlgorithm("RS384")), reason: R.Alg},
		{name: "alg RS256 with an RS384 key (key pin)", token: mint(clerktest.WithSigningKey(corpusRS384), clerktest.WithAlgorithm("RS256")), reason: R.Alg},

		// kid.
		{name: "kid missing", token: mint(clerktest.WithoutHeader("kid")), reason: R.Invalid},
		{name: "kid empty", token: mint(clerktest.WithHeader("kid", "")), reason: R.Invalid},
		{name: "kid null", token: mint(clerktest.WithHeader("kid", rawJSON("null"))), reason: R.Invalid},
		{name: "kid a number", token: mint(clerktest.WithHeader("kid", 7)), reason: R.Invalid},
		{name: "kid unknown", token: mint(clerktest.WithHeader("kid", "ins_unknown")), reason: R.Kid},
		{name: "kid in another case", token: mint(clerktest.WithHeader("kid", strings.ToUpper(corpusKID))), reason: R.Kid},
		{name: "kid duplicated in the header", token: rawHdr(`{"alg":"RS256","kid":"ins_unknown","kid":"` + corpusKID + `"}`), reason: R.Invalid},
		{name: "kid duplicated after unicode unescaping", token: rawHdr(`{"alg":"RS256","kid":"` + corpusKID + `","k\u0069d":"ins_unknown"}`), reason: R.Invalid},
		{name: "kid of 10 KiB", token: mint(clerktest.WithHeader("kid", strings.Repeat("k", 10<<10))), reason: R.Kid},
		{name: "kid path traversal", token: mint(clerktest.WithHeader("kid", "../../etc/passwd")), reason: R.Kid},
		{name: "kid path inside an id", token: mint(clerktest.WithHeader("kid", corpusKID+"/../y")), reason: R.Kid},
		{name: "kid with NUL and newline", token: mint(clerktest.WithHeader("kid", corpusKID+"\x00\n")), reason: R.Kid},
		{name: "kid a URL", token: mint(clerktest.WithHeader("kid", e.attacker+"/key.pem")), reason: R.Kid},
		{name: "kid of a rotated-out key", token: e.rotatedToken, reason: R.Kid},
		{name: "kid of the attacker's own key", token: atk(), reason: R.Kid},

		// Keys and key URLs carried by the token: never trusted, never fetched.
		{name: "embedded jwk (attacker key, attacker kid)", token: atk(clerktest.WithHeader("jwk", jwkOfAttacker)), reason: R.Invalid},
		{name: "embedded jwk with the real kid", token: mint(clerktest.WithSigningKey(corpusForeign), clerktest.WithHeader("jwk", jwkOfAttacker)), reason: R.Invalid},
		{name: "jku to the attacker", token: atk(clerktest.WithHeader("jku", e.attacker+"/jwks.json")), reason: R.Invalid},
		{name: "jku with the real kid", token: mint(clerktest.WithSigningKey(corpusForeign), clerktest.WithHeader("jku", e.attacker+"/jwks.json")), reason: R.Invalid},
		{name: "x5u to the attacker", token: atk(clerktest.WithHeader("x5u", e.attacker+"/cert.pem")), reason: R.Invalid},
		{name: "x5c chain", token: atk(clerktest.WithHeader("x5c", []string{"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"})), reason: R.Invalid},
		{name: "x5t thumbprint", token: mint(clerktest.WithHeader("x5t", "dGh1bWJwcmludA")), reason: R.Invalid},
		{name: "x5t#S256 thumbprint", token: mint(clerktest.WithHeader("x5t#S256", "dGh1bWJwcmludA")), reason: R.Invalid},
		{name: "crit naming exp", token: mint(clerktest.WithHeader("crit", []string{"exp"})), reason: R.Invalid},
		{name: "crit empty", token: mint(clerktest.WithHeader("crit", []string{})), reason: R.Invalid},
		{name: "b64 false with crit", token: mint(clerktest.WithHeader("b64", false), clerktest.WithHeader("crit", []string{"b64"})), reason: R.Invalid},
		{name: "b64 false", token: mint(clerktest.WithHeader("b64", false)), reason: R.Invalid},

		// typ and cat.
		{name: "typ jwt lower case", token: mint(clerktest.WithHeader("typ", "jwt")), reason: R.Invalid},
		{name: "typ JOSE", token: mint(clerktest.WithHeader("typ", "JOSE")), reason: R.Invalid},
		{name: "typ JWT with a trailing space", token: mint(clerktest.WithHeader("typ", "JWT ")), reason: R.Invalid},
		{name: "typ application/jwt", token: mint(clerktest.WithHeader("typ", "application/jwt")), reason: R.Invalid},
		{name: "typ a number", token: mint(clerktest.WithHeader("typ", 1)), reason: R.Invalid},
		{name: "typ at+jwt", token: mint(clerktest.WithHeader("typ", "at+jwt")), reason: R.Type},
		{name: "typ application/at+jwt", token: mint(clerktest.WithHeader("typ", "application/at+jwt")), reason: R.Type},
		{name: "cat template", token: mint(clerktest.WithHeader("cat", clerktest.CategoryTemplate)), reason: R.Type},
		{name: "cat machine", token: mint(clerktest.WithHeader("cat", clerktest.CategoryMachine)), reason: R.Type},
		{name: "cat oauth", token: mint(clerktest.WithHeader("cat", "cl_B7d4PD444AAA")), reason: R.Type},
		{name: "cat garbage", token: mint(clerktest.WithHeader("cat", "garbage")), reason: R.Type},
		{name: "cat a number", token: mint(clerktest.WithHeader("cat", 111)), reason: R.Invalid},
		{name: "template token", token: mint(clerktest.WithTemplate("supabase")), reason: R.Type},
		{name: "template token without cat", token: mint(clerktest.WithTemplate("supabase"), clerktest.WithoutHeader("cat")), reason: R.Type},
		{name: "machine token", token: mint(clerktest.WithMachine(), clerktest.WithClaim("sub", "mch_corpus")), reason: R.Type},

		// Claims missing or of the wrong JSON type.
		{name: "exp missing", token: mint(clerktest.WithoutClaim("exp")), reason: R.Invalid},
		{name: "exp null", token: claim("exp", "null"), reason: R.Invalid},
		{name: "exp a string", token: claim("exp", fmt.Sprintf(`"%d"`, unix(time.Hour))), reason: R.Invalid},
		{name: "exp a fraction", token: claim("exp", fmt.Sprintf(`%d.5`, unix(time.Hour))), reason: R.Invalid},
		{name: "exp with an exponent", token: claim("exp", "1e10"), reason: R.Invalid},
		{name: "exp beyond int64", token: claim("exp", "99999999999999999999"), reason: R.Invalid},
		{name: "exp with a leading zero", token: claim("exp", fmt.Sprintf("0%d", unix(time.Hour))), reason: R.Invalid},
		{name: "exp a bool", token: claim("exp", "true"), reason: R.Invalid},
		{name: "nbf an object", token: claim("nbf", "{}"), reason: R.Invalid},
		{name: "nbf a string", token: claim("nbf", `"0"`), reason: R.Invalid},
		{name: "iat an array", token: claim("iat", fmt.Sprintf("[%d]", unix(0))), reason: R.Invalid},
		{name: "azp an array", token: claim("azp", `["`+corpusParty+`"]`), reason: R.Invalid},
		{name: "azp a number", token: claim("azp", "443"), reason: R.Invalid},
		{name: "sub a number", token: claim("sub", "12345"), reason: R.Invalid},
		{name: "sub missing", token: mint(clerktest.WithoutClaim("sub")), reason: R.Invalid},
		{name: "sub empty", token: claim("sub", `""`), reason: R.Invalid},
		{name: "sid a bool", token: claim("sid", "true"), reason: R.Invalid},
		{name: "iss a number", token: claim("iss", "1"), reason: R.Invalid},
		{name: "v a string", token: claim("v", `"2"`), reason: R.Invalid},
		{name: "v a fraction", token: claim("v", "2.5"), reason: R.Invalid},
		{name: "fva one integer", token: claim("fva", "[1]"), reason: R.Invalid},
		{name: "fva three integers", token: claim("fva", "[1,2,3]"), reason: R.Invalid},
		{name: "fva a string", token: claim("fva", `"0,-1"`), reason: R.Invalid},
		{name: "fva with a fraction", token: claim("fva", "[0.5,-1]"), reason: R.Invalid},
		{name: "fva with null", token: claim("fva", "[null,-1]"), reason: R.Invalid},
		{name: "o a string", token: claim("o", `"org_1"`), reason: R.Invalid},
		{name: "o an array", token: claim("o", `[{"id":"org_1"}]`), reason: R.Invalid},
		{name: "o.id a number", token: claim("o", `{"id":1}`), reason: R.Invalid},
		{name: "act a string", token: claim("act", `"user_admin"`), reason: R.Invalid},
		{name: "act.sub a number", token: claim("act", `{"sub":1}`), reason: R.Invalid},
		{name: "org_permissions a string", token: mint(clerktest.WithVersion1(), clerktest.WithClaim("org_id", "org_1"), clerktest.WithClaim("org_permissions", "org:a:b")), reason: R.Invalid},
		{name: "org_permissions with a number", token: claim("org_permissions", `["org:a:b",1]`), reason: R.Invalid},
		{name: "sts a number", token: claim("sts", "1"), reason: R.Invalid},
		{name: "jti a number", token: claim("jti", "1"), reason: R.Invalid},
		{name: "aud a number", token: claim("aud", "1"), reason: R.Invalid},
		{name: "fea an array", token: claim("fea", `["o:docs"]`), reason: R.Invalid},

		// Time boundaries: expired when now >= exp+skew; nbf and iat refused
		// when > now+skew (skew 5 s). The accepted side is in validTokens.
		{name: "exp exactly at now-skew", token: mint(clerktest.WithExpiry(now.Add(-5 * time.Second))), reason: R.Expired},
		{name: "exp one second past the skew", token: mint(clerktest.WithExpiry(now.Add(-6 * time.Second))), reason: R.Expired},
		{name: "exp long ago", token: mint(clerktest.WithIssuedAt(now.Add(-time.Hour))), reason: R.Expired},
		{name: "exp zero", token: claim("exp", "0"), reason: R.Expired},
		{name: "exp negative", token: claim("exp", "-1"), reason: R.Expired},
		{name: "nbf one second beyond the skew", token: mint(clerktest.WithNotBefore(now.Add(6 * time.Second))), reason: R.NotYet},
		{name: "nbf an hour ahead", token: mint(clerktest.WithNotBefore(now.Add(time.Hour))), reason: R.NotYet},
		// Dates outside years 1..9999 are refused outright (time.Unix wraps
		// near the int64 limits: an nbf of 2^63-1 once became a past date).
		{name: "nbf int64 max", token: claim("nbf", "9223372036854775807"), reason: R.Invalid},
		{name: "nbf at the largest second time.Unix holds", token: claim("nbf", "9223371974719179007"), reason: R.Invalid},
		{name: "nbf just after year 9999", token: claim("nbf", "253402300800"), reason: R.Invalid},
		{name: "iat one second beyond the skew", token: claim("iat", fmt.Sprint(unix(6*time.Second))), reason: R.IatFuture},
		{name: "iat an hour ahead", token: claim("iat", fmt.Sprint(unix(time.Hour))), reason: R.IatFuture},
		{name: "iat int64 max", token: claim("iat", "9223372036854775807"), reason: R.Invalid},

		// iss near-misses.
		{name: "iss missing", token: mint(clerktest.WithoutClaim("iss")), reason: R.Issuer},
		{name: "iss empty", token: claim("iss", `""`), reason: R.Issuer},
		{name: "iss other instance", token: claim("iss", `"https://clerk.other.test"`), reason: R.Issuer},
		{name: "iss trailing slash", token: claim("iss", `"`+corpusIssuer+`/"`), reason: R.Issuer},
		{name: "iss upper case", token: claim("iss", `"`+strings.ToUpper(corpusIssuer)+`"`), reason: R.Issuer},
		{name: "iss http instead of https", token: claim("iss", `"`+strings.Replace(corpusIssuer, "https:", "http:", 1)+`"`), reason: R.Issuer},
		{name: "iss extra path", token: claim("iss", `"`+corpusIssuer+`/v1"`), reason: R.Issuer},
		{name: "iss explicit port", token: claim("iss", `"`+corpusIssuer+`:443"`), reason: R.Issuer},
		{name: "iss trailing dot", token: claim("iss", `"`+corpusIssuer+`."`), reason: R.Issuer},
		{name: "iss with user info", token: claim("iss", `"https://evil@clerk.sessiongate.test"`), reason: R.Issuer},
		{name: "iss with a trailing NUL", token: claim("iss", `"`+corpusIssuer+`\u0000"`), reason: R.Issuer},

		// sub and sid shapes.
		{name: "sub a machine", token: claim("sub", `"mch_corpus"`), reason: R.Type},
		{name: "sub an organization", token: claim("sub", `"org_corpus"`), reason: R.Type},
		{name: "sub bare prefix", token: claim("sub", `"user_"`), reason: R.Type},
		{name: "sub upper-case prefix", token: claim("sub", `"USER_corpus"`), reason: R.Type},
		{name: "sid missing", token: mint(clerktest.WithoutClaim("sid")), reason: R.Type},
		{name: "sid empty", token: claim("sid", `""`), reason: R.Type},
		{name: "sid bare prefix", token: claim("sid", `"sess_"`), reason: R.Type},
		{name: "sid a client id", token: claim("sid", `"client_corpus"`), reason: R.Type},
		{name: "sid upper-case prefix", token: claim("sid", `"SESS_corpus"`), reason: R.Type},

		// azp near-misses (authorized parties are configured).
		{name: "azp missing", token: mint(clerktest.WithAuthorizedParty("")), reason: R.Parties},
		{name: "azp empty", token: claim("azp", `""`), reason: R.Parties},
		{name: "azp null", token: claim("azp", "null"), reason: R.Parties},
		{name: "azp trailing slash", token: claim("azp", `"`+corpusParty+`/"`), reason: R.Parties},
		{name: "azp upper case", token: claim("azp", `"https://APP.example.com"`), reason: R.Parties},
		{name: "azp http", token: claim("azp", `"http://app.example.com"`), reason: R.Parties},
		{name: "azp explicit port", token: claim("azp", `"`+corpusParty+`:443"`), reason: R.Parties},
		{name: "azp subdomain", token: claim("azp", `"https://evil.app.example.com"`), reason: R.Parties},
		{name: "azp suffix domain", token: claim("azp", `"https://app.example.com.evil.test"`), reason: R.Parties},

		// sts.
		{name: "sts revoked", token: claim("sts", `"revoked"`), reason: R.Invalid},
		{name: "sts ACTIVE", token: claim("sts", `"ACTIVE"`), reason: R.Invalid},
		{name: "sts empty", token: claim("sts", `""`), reason: R.Invalid},
		{name: "sts pending (route does not allow it)", token: mint(clerktest.WithPending()), reason: middleware.ReasonSessionPending},

		// Duplicate members, in every place a parser could disagree.
		{name: "duplicate sub", token: raw(rawClaims(`"sub":"user_other"`)), reason: R.Invalid},
		{name: "duplicate exp", token: raw(rawClaims(fmt.Sprintf(`"exp":%d`, unix(time.Hour)))), reason: R.Invalid},
		{name: "duplicate sub after unicode unescaping", token: raw(rawClaims(`"s\u0075b":"user_other"`)), reason: R.Invalid},
		{name: "duplicate in o", token: raw(rawClaims(`"o":{"id":"org_1","id":"org_2"}`)), reason: R.Invalid},
		{name: "duplicate in act", token: raw(rawClaims(`"act":{"sub":"user_a","sub":"user_b"}`)), reason: R.Invalid},
		{name: "duplicate in an unknown nested object", token: raw(rawClaims(`"x":{"y":[{"a":1,"a":2}]}`)), reason: R.Invalid},
		{name: "duplicate alg in the header", token: rawHdr(`{"alg":"RS256","kid":"` + corpusKID + `","alg":"none"}`), reason: R.Invalid},
		{name: "duplicate alg after unicode unescaping", token: rawHdr(`{"alg":"RS256","kid":"` + corpusKID + `","\u0061lg":"none"}`), reason: R.Invalid},
		// Names equal under encoding/json's case folding: a case-insensitive
		// decoder upstream would read the other value.
		{name: "sub twice, in another case", token: raw(rawClaims(`"SUB":"user_other"`)), reason: R.Invalid},
		{name: "sub twice, with a long s", token: raw(rawClaims(`"\u017fub":"user_other"`)), reason: R.Invalid},
		{name: "o.id twice, in another case", token: raw(rawClaims(`"o":{"id":"org_1","Id":"org_2"}`)), reason: R.Invalid},
		{name: "act.sub twice, in another case", token: raw(rawClaims(`"act":{"sub":"user_a","SUB":"user_b"}`)), reason: R.Invalid},
		{name: "a nested name twice, in another case", token: raw(rawClaims(`"x":{"y":[{"role":"a","ROLE":"b"}]}`)), reason: R.Invalid},
		{name: "alg twice in the header, in another case", token: rawHdr(`{"alg":"RS256","kid":"` + corpusKID + `","ALG":"none"}`), reason: R.Invalid},
		{name: "kid twice in the header, with a Kelvin sign", token: rawHdr(`{"alg":"RS256","kid":"` + corpusKID + `","\u212aid":"ins_unknown"}`), reason: R.Invalid},

		// Organization permissions: over the limits is invalid whoever signed
		// it, and refused before any key lookup (nothing is expanded from an
		// unverified payload).
		{name: "7,700-digit permission mask, signed", token: raw(worstMaskClaims(tb)), reason: R.Invalid},
		{name: "7,700-digit permission mask, another key with the real kid", token: mint(clerktest.WithRawPayload(worstMaskClaims(tb)), clerktest.WithSigningKey(corpusForeign)), reason: R.Invalid},
		{name: "7,700-digit permission mask, unknown kid", token: atk(clerktest.WithRawPayload(worstMaskClaims(tb))), reason: R.Invalid},
		{name: "1,025 permission names", token: raw(orgClaims("o:f", strings.Join(permNames(capNames+1), ","), "1")), reason: R.Invalid},
		{name: "1,025 granted permissions", token: raw(orgClaims("o:f,o:g", strings.Join(permNames(capNames), ","), ones(capNames)+",1")), reason: R.Invalid},

		// Malformed JSON and non-UTF-8.
		{name: "non-UTF-8 in sub", token: raw([]byte(strings.Replace(string(rawClaims()), `"user_corpus"`, "\"user_\xff\"", 1))), reason: R.Invalid},
		{name: "overlong UTF-8 in an unknown claim", token: raw(rawClaims("\"x\":\"\xc0\xaf\"")), reason: R.Invalid},
		{name: "lone surrogate escape", token: raw(rawClaims(`"x":"\ud800"`)), reason: R.Invalid},
		{name: "raw control character in a string", token: raw(rawClaims("\"x\":\"a\x01b\"")), reason: R.Invalid},
		{name: "non-UTF-8 in the header", token: rawHdr("{\"alg\":\"RS256\",\"kid\":\"" + corpusKID + "\",\"x\":\"\xfe\"}"), reason: R.Invalid},
		{name: "payload with a BOM", token: raw(append([]byte("\xef\xbb\xbf"), rawClaims()...)), reason: R.Invalid},
		{name: "payload with trailing bytes", token: raw(append(rawClaims(), 'x')), reason: R.Invalid},
		{name: "payload two objects", token: raw(append(rawClaims(), rawClaims()...)), reason: R.Invalid},
		{name: "payload an array", token: raw([]byte(`[` + string(rawClaims()) + `]`)), reason: R.Invalid},
		{name: "payload null", token: raw([]byte("null")), reason: R.Invalid},
		{name: "payload with a trailing comma", token: raw([]byte(strings.TrimSuffix(string(rawClaims()), "}") + ",}")), reason: R.Invalid},
		{name: "payload nested 40 deep", token: raw(rawClaims(`"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40))), reason: R.Invalid},
		{name: "header an array", token: rawHdr(`["RS256"]`), reason: R.Invalid},
		{name: "header not JSON", token: enc("{") + "." + p[1] + "." + p[2], reason: R.Invalid},
		{name: "payload not JSON", token: p[0] + "." + enc("x") + "." + p[2], reason: R.Invalid},

		// Segments and sizes.
		{name: "one segment", token: p[0], reason: R.Invalid},
		{name: "two segments", token: p[0] + "." + p[1], reason: R.Invalid},
		{name: "header and a dot", token: p[0] + ".", reason: R.Invalid},
		{name: "empty payload segment", token: p[0] + ".." + p[2], reason: R.Invalid},
		{name: "empty header segment", token: "." + p[1] + "." + p[2], reason: R.Invalid},
		{name: "only dots", token: "..", reason: R.Invalid},
		{name: "four segments", token: valid + ".x", reason: R.Invalid},
		{name: "trailing dot", token: valid + ".", reason: R.Invalid},
		{name: "five segments (JWE shape)", token: p[0] + "." + p[1] + "." + p[2] + "." + p[2] + "." + p[2], reason: R.Invalid},
		{name: "payload over 16 KiB", token: mint(clerktest.WithClaim("pad", strings.Repeat("a", 16<<10))), reason: R.Invalid},
		{name: "header over 16 KiB", token: mint(clerktest.WithHeader("pad", strings.Repeat("h", 16<<10))), reason: R.Invalid},
		{name: "16 KiB + 1 of base64url", token: strings.Repeat("A", middleware.MaxTokenSize-1-len(p[0])-1) + "." + p[0] + ".A", reason: R.Invalid},
		{name: "plain garbage", token: "not-a-token", reason: R.Invalid},

		// base64url spelling.
		{name: "space inside the payload", token: p[0] + "." + p[1][:10] + " " + p[1][10:] + "." + p[2], reason: R.Invalid},
		{name: "tab inside the signature", token: p[0] + "." + p[1] + "." + p[2][:10] + "\t" + p[2][10:], reason: R.Invalid},
		{name: "newline after a dot", token: p[0] + ".\n" + p[1] + "." + p[2], reason: R.Invalid},
		{name: "standard alphabet + and /", token: stdAlphabet, reason: R.Invalid},
		{name: "padding on the header", token: p[0] + "==." + p[1] + "." + p[2], reason: R.Invalid},
		{name: "padding on the payload", token: p[0] + "." + p[1] + "=." + p[2], reason: R.Invalid},
		{name: "padding on the signature", token: valid + "=", reason: R.Invalid},
		{name: "percent-encoded dots", token: p[0] + "%2E" + p[1] + "%2E" + p[2], reason: R.Invalid},
		{name: "quoted token", token: `"` + valid + `"`, reason: R.Invalid},

		// Signatures.
		{name: "empty signature", token: p[0] + "." + p[1] + ".", reason: R.Sig},
		{name: "signature truncated by a byte", token: p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sigBytes[:len(sigBytes)-1]), reason: R.Sig},
		{name: "signature extended by a byte", token: p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(append(append([]byte{}, sigBytes...), 0)), reason: R.Sig},
		{name: "signature all zero", token: p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, len(sigBytes))), reason: R.Sig},
		{name: "signature with one bit flipped", token: p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(flipped), reason: R.Sig},
		{name: "signature of another token", token: p[0] + "." + p[1] + "." + op[2], reason: R.Sig},
		{name: "signed by another key with the real kid", token: mint(clerktest.WithSigningKey(corpusForeign)), reason: R.Sig},
		{name: "claims changed after signing", token: p[0] + "." + enc(strings.Replace(payload, corpusUser, "user_admin", 1)) + "." + p[2], reason: R.Sig},

		// A valid signature over the same claims spelled differently.
		{name: "payload respelled (padding bits)", token: padded[0] + "." + respell(padded[1]) + "." + padded[2], reason: R.Invalid},
		{name: "header respelled (padding bits)", token: respell(padded[0]) + "." + padded[1] + "." + padded[2], reason: R.Invalid},
		{name: "payload re-indented, original signature", token: p[0] + "." + enc(indented.String()) + "." + p[2], reason: R.Sig},
		{name: "payload with escaped slashes, original signature", token: p[0] + "." + enc(strings.ReplaceAll(payload, "/", `\/`)) + "." + p[2], reason: R.Sig},
		{name: "payload with a unicode-escaped letter, original signature", token: p[0] + "." + enc(strings.Replace(payload, `"user_`, `"\u0075ser_`, 1)) + "." + p[2], reason: R.Sig},
		{name: "header with spaces, original signature", token: enc(strings.ReplaceAll(dec(tb, p[0]), ":", ": ")) + "." + p[1] + "." + p[2], reason: R.Sig},
		{name: "header without typ, original signature", token: enc(`{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"`+corpusKID+`"}`) + "." + p[1] + "." + p[2], reason: R.Sig},
	}
}

// validCookieValue reports whether Go's cookie parser keeps tok as a
// __session value unchanged (net/http validCookieValueByte; surrounding
// spaces are trimmed and surrounding quotes stripped, so those spellings
// change the token).
func validCookieValue(tok string) bool {
	if tok == "" || tok[0] == ' ' || tok[0] == '\t' || tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t' {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if b := tok[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// TestHostileCorpus runs every token of the corpus through Gate.Verify
// (an in-memory key set and a remote JWKS), the reverse proxy and the
// forward-auth endpoint, carried in the Authorization header and in the
// __session cookie. Each must be rejected with 401 and its exact reason;
// none may reach the upstream, produce a 5xx or panic; nothing may be
// fetched from the URLs tokens name.
func TestHostileCorpus(t *testing.T) {
	t.Parallel()
	e := newCorpusEnv(t)
	cases := hostileCorpus(t, e)
	if len(cases) < 80 {
		t.Fatalf("the corpus has %d cases, want at least 80", len(cases))
	}
	names, tokens := map[string]bool{}, map[string]string{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		names[c.name] = true
		if prev, dup := tokens[c.token]; dup {
			t.Fatalf("cases %q and %q have the same token", prev, c.name)
		}
		tokens[c.token] = c.name
	}
	for name, tok := range e.validTokens(t) {
		if c, dup := tokens[tok]; dup {
			t.Fatalf("valid token %q is also corpus case %q", name, c)
		}
	}

	var upstreamHits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
	}))
	t.Cleanup(upstream.Close)
	upURL, _ := url.Parse(upstream.URL)
	px, err := proxy.New(proxy.Options{Gate: e.rgate, Routes: []proxy.Route{
		{Path: "/", Upstream: upURL, Auth: proxy.Required, ForwardToken: true, Policy: e.rgate.DefaultPolicy()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	jwksBefore := e.inst.JWKSRequests()

	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				for gname, g := range map[string]*middleware.Gate{"memory": e.gate, "remote": e.rgate} {
					c, err := verifyNoPanic(t, g, tc.token)
					if err == nil {
						t.Fatalf("%s gate accepted the token (sub %q)", gname, c.Subject)
					}
					if _, reason, _ := middleware.Outcome(err); reason != tc.reason {
						t.Fatalf("%s gate: reason %s (%v), want %s", gname, reason, err, tc.reason)
					}
					if !errors.Is(err, &middleware.Error{Reason: tc.reason}) {
						t.Fatalf("%s gate: errors.Is(err, sentinel of %s) is false", gname, tc.reason)
					}
				}
				cookieReason := tc.reason
				if !validCookieValue(tc.token) {
					// Go's cookie parser drops a value with bytes a cookie
					// cannot hold: no token at all.
					cookieReason = middleware.ReasonSessionTokenMissing
				}
				for _, carrier := range []struct {
					name   string
					set    func(*http.Request)
					reason middleware.Reason
				}{
					{"header", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tc.token) }, tc.reason},
					{"cookie", func(r *http.Request) { r.Header.Set("Cookie", "theme=dark; __session="+tc.token) }, cookieReason},
				} {
					if carrier.name == "cookie" && len(tc.token) > 1 && tc.token[0] == '"' && tc.token[len(tc.token)-1] == '"' {
						// RFC 6265 allows a DQUOTE-wrapped cookie-value and Go
						// strips the quotes: as a cookie this is the valid token
						// itself (TestSessionCookieQuirks in proxy/ pins it).
						continue
					}
					for _, path := range []string{"/api/x", proxy.ForwardAuthPath} {
						r := httptest.NewRequest("GET", "http://app.example.com"+path, nil)
						r.RemoteAddr = "127.0.0.1:40000" // forward-auth: the front proxy on loopback
						r.Header.Set("X-Forwarded-Uri", "/api/x")
						carrier.set(r)
						w := serveNoPanic(t, px, r)
						where := carrier.name + " " + path
						if w.Code != http.StatusUnauthorized {
							t.Fatalf("%s: status %d, want 401: %s", where, w.Code, w.Body)
						}
						if got := w.Header().Get("X-Clerk-Auth-Reason"); got != string(carrier.reason) {
							t.Fatalf("%s: reason %q, want %q", where, got, carrier.reason)
						}
						var body struct{ Error, Reason string }
						if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "unauthenticated" || body.Reason != string(carrier.reason) {
							t.Fatalf("%s: body %s", where, w.Body)
						}
						wantChallenge := `Bearer realm="sessiongate", error="invalid_token"`
						if carrier.reason == middleware.ReasonSessionTokenMissing {
							wantChallenge = `Bearer realm="sessiongate"`
						}
						if got := w.Header().Get("WWW-Authenticate"); got != wantChallenge {
							t.Fatalf("%s: WWW-Authenticate %q, want %q", where, got, wantChallenge)
						}
						if w.Header().Get("X-Sessiongate-User-Id") != "" {
							t.Fatalf("%s: identity header on a rejection", where)
						}
						for _, part := range strings.Split(tc.token, ".") {
							if len(part) > 8 && strings.Contains(w.Body.String(), part) {
								t.Fatalf("%s: the response echoes a token segment", where)
							}
						}
					}
				}
			})
		}
	})
	if n := upstreamHits.Load(); n != 0 {
		t.Errorf("%d hostile requests reached the upstream", n)
	}
	if n := e.hits.Load(); n != 0 {
		t.Errorf("%d requests were made to URLs named by tokens (jku/x5u/kid)", n)
	}
	// Only unknown kids may cause a JWKS fetch, and the remote source
	// bounds those to one per min_refresh_interval (10 s): the whole corpus
	// costs at most a couple of fetches, never one per token.
	if n := e.inst.JWKSRequests() - jwksBefore; n > 2 {
		t.Errorf("the corpus caused %d JWKS fetches, want at most 2", n)
	}
}

// TestHostileCorpusAcceptedSide proves the boundaries from the other side:
// every token of validTokens passes Gate.Verify and the proxy (header and
// cookie) and reaches the upstream with its identity.
func TestHostileCorpusAcceptedSide(t *testing.T) {
	t.Parallel()
	e := newCorpusEnv(t)
	var upstreamHits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		fmt.Fprint(w, r.Header.Get("X-Sessiongate-User-Id"))
	}))
	t.Cleanup(upstream.Close)
	upURL, _ := url.Parse(upstream.URL)
	px, err := proxy.New(proxy.Options{Gate: e.gate, Routes: []proxy.Route{{Path: "/", Upstream: upURL, ForwardToken: true}}})
	if err != nil {
		t.Fatal(err)
	}
	valid := e.validTokens(t)
	for name, tok := range valid {
		for gname, g := range map[string]*middleware.Gate{"memory": e.gate, "remote": e.rgate} {
			c, err := verifyNoPanic(t, g, tok)
			if err != nil {
				t.Errorf("%s: %s gate: %v", name, gname, err)
				continue
			}
			if c.Subject != corpusUser || c.SessionID != corpusSID {
				t.Errorf("%s: claims %+v", name, c)
			}
		}
		for _, cookie := range []bool{false, true} {
			r := httptest.NewRequest("GET", "http://app.example.com/x", nil)
			if cookie {
				r.Header.Set("Cookie", "__session="+tok)
			} else {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			w := serveNoPanic(t, px, r)
			if w.Code != 200 || w.Body.String() != corpusUser {
				t.Errorf("%s (cookie %v): %d %s", name, cookie, w.Code, w.Body)
			}
		}
	}
	if int(upstreamHits.Load()) != 2*len(valid) {
		t.Errorf("upstream hits %d, want %d", upstreamHits.Load(), 2*len(valid))
	}
}

func verifyNoPanic(t *testing.T, g *middleware.Gate, tok string) (c *middleware.Claims, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Verify panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.Verify(ctx, tok)
}

func serveNoPanic(t *testing.T, h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("ServeHTTP panicked: %v", p)
			}
		}()
		h.ServeHTTP(w, r)
	}()
	if w.Code >= 500 {
		t.Fatalf("%s %s: status %d: %s", r.Method, r.URL, w.Code, w.Body)
	}
	return w
}

// TestWriteFuzzCorpus exports the corpus (and the valid tokens) to
// testdata/fuzz/FuzzVerify in Go's corpus file format. It runs only when
// SESSIONGATE_WRITE_FUZZ_CORPUS=1:
//
//	SESSIONGATE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./middleware/
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SESSIONGATE_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set SESSIONGATE_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzVerify")
	}
	e := newCorpusEnv(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, tok string) {
		file := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, strings.ToLower(name))
		body := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", tok)
		if err := os.WriteFile(filepath.Join(dir, "corpus-"+file), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range hostileCorpus(t, e) {
		if len(c.token) <= 4096 { // the huge ones stay f.Add seeds only
			write(c.name, c.token)
		}
	}
	for name, tok := range e.validTokens(t) {
		write("valid "+name, tok)
	}
}
