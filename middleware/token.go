package middleware

import (
	"encoding/base64"
	"errors"
	"strings"
)

// MaxTokenSize is the largest token, in bytes, the Gate will look at. Larger
// tokens are rejected before any decoding. Clerk session tokens
// are around 1 KiB.
const MaxTokenSize = 16 << 10

// Token categories of Clerk's "cat" header (clerk/javascript jwtCategories.ts).
const (
	catSession = "cl_B7d4PD111AAA"
	catMachine = "cl_B7d4PD333AAA" // M2M JWTs
	catIgnore  = "cl_I7d4PD111III" // instance opted out of categories
)

// tokenKind is what a JWT is, from its header (typ, cat) and its subject.
type tokenKind int

const (
	kindSession  tokenKind = iota // typ absent or JWT; cat absent, session or ignore
	kindM2MJWT                    // cat machine, or sub mch_…
	kindOAuthJWT                  // typ at+jwt (RFC 9068)
	kindOther                     // another category: JWT templates and the rest
)

// b64 is strict base64url without padding: the alphabet is checked before
// decoding, and Strict refuses non-zero trailing bits, so each segment has
// exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

// header holds the JOSE header members sessiongate reads.
type header struct {
	alg, typ, kid, cat string
	hasKid             bool
}

// parsedToken is a token split and decoded once; signingInput and signature
// are what the signature check needs.
type parsedToken struct {
	header       header
	kind         tokenKind
	claims       *rawClaims
	signingInput []byte // ASCII "header.payload"
	signature    []byte
}

var (
	errSegments  = errors.New("a JWT has three base64url segments")
	errAlphabet  = errors.New("a character outside base64url")
	errEmbedded  = errors.New("header carries keys or critical extensions")
	errMachineTy = errors.New("machine token type")
)

// parseToken splits and decodes the compact form and checks everything that
// needs no key and no configuration: segment shape, strict JSON, header
// members. It returns an *Error with the reason for any failure.
func parseToken(token string) (*parsedToken, *Error) {
	if len(token) > MaxTokenSize {
		return nil, reject(ReasonTokenInvalid, "the session token is larger than 16 KiB")
	}
	dot1, dot2 := -1, -1
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			if dot1 < 0 {
				dot1 = i
			} else if dot2 < 0 {
				dot2 = i
			} else {
				return nil, rejectErr(ReasonTokenInvalid, "the session token is malformed", errSegments)
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return nil, rejectErr(ReasonTokenInvalid, "the session token is malformed", errAlphabet)
		}
	}
	// An empty signature segment parses (an alg "none" token has one); it
	// then fails the algorithm allowlist or the signature length check.
	if dot2 < 0 || dot1 == 0 || dot2 == dot1+1 {
		return nil, rejectErr(ReasonTokenInvalid, "the session token is malformed", errSegments)
	}
	// One buffer for the signing input and both decoded JSON parts.
	buf := make([]byte, dot2+b64.DecodedLen(dot2)+b64.DecodedLen(len(token)-dot2-1))
	p := &parsedToken{signingInput: buf[:dot2:dot2]}
	copy(p.signingInput, token[:dot2])
	rest := buf[dot2:]

	hdrLen, err := b64.Decode(rest, p.signingInput[:dot1])
	if err != nil {
		return nil, rejectErr(ReasonTokenInvalid, "the session token header is not base64url", err)
	}
	hdrJSON := rest[:hdrLen]
	rest = rest[hdrLen:]
	if e := p.parseHeader(hdrJSON); e != nil {
		return nil, e
	}

	payLen, err := b64.Decode(rest, p.signingInput[dot1+1:])
	if err != nil {
		return nil, rejectErr(ReasonTokenInvalid, "the session token payload is not base64url", err)
	}
	payJSON := rest[:payLen]
	rest = rest[payLen:]
	claims, err := decodeClaims(payJSON)
	if errors.Is(err, errPermissionLimit) {
		return nil, rejectErr(ReasonTokenInvalid, "the session token carries more organization permissions than sessiongate accepts", err)
	}
	if err != nil {
		return nil, rejectErr(ReasonTokenInvalid, "the session token claims are malformed", err)
	}
	p.claims = claims
	if p.kind == kindSession && strings.HasPrefix(claims.Subject, "mch_") {
		p.kind = kindM2MJWT
	}

	sigLen, err := b64.Decode(rest, []byte(token[dot2+1:]))
	if err != nil {
		return nil, rejectErr(ReasonTokenInvalid, "the session token signature is not base64url", err)
	}
	p.signature = rest[:sigLen]
	return p, nil
}

func (p *parsedToken) parseHeader(data []byte) *Error {
	r := jsonReader{data: data}
	h := &p.header
	var embedded bool
	err := r.object(0, func(name string) error {
		var err error
		switch name {
		case "alg":
			h.alg, err = r.string()
		case "typ":
			if r.null() {
				return nil
			}
			h.typ, err = r.string()
		case "kid":
			h.kid, err = r.string()
			h.hasKid = true
		case "cat":
			if r.null() {
				return nil
			}
			h.cat, err = r.string()
		case "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64":
			// Keys named or carried by the token itself are never trusted,
			// and critical extensions (b64:false among them) are not
			// understood: refuse rather than ignore (RFC 7515 §4.1.11).
			embedded = true
			err = r.skip(1)
		default:
			err = r.skip(1)
		}
		return err
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return rejectErr(ReasonTokenInvalid, "the session token header is malformed", err)
	}
	if embedded {
		return rejectErr(ReasonTokenInvalid, "the session token header carries keys or critical extensions", errEmbedded)
	}
	switch h.typ {
	case "", "JWT":
	case "at+jwt", "application/at+jwt":
		p.kind = kindOAuthJWT
		return nil
	default:
		return reject(ReasonTokenInvalid, "the session token has an unexpected typ header")
	}
	switch h.cat {
	case "", catSession, catIgnore:
		p.kind = kindSession
	case catMachine:
		p.kind = kindM2MJWT
	default:
		p.kind = kindOther
	}
	return nil
}

// notSession is the rejection of a token that is not a session token where
// only sessions are verified (a policy that accepts no machine credential):
// token-type-mismatch, as for any token of another class. A policy that
// accepts some machine kinds answers token-type-not-accepted instead
// (AuthenticateAny).
func (p *parsedToken) notSession() *Error {
	switch p.kind {
	case kindM2MJWT:
		return rejectErr(ReasonTokenTypeMismatch, "the token is an M2M token, not a session token", errMachineTy)
	case kindOAuthJWT:
		return rejectErr(ReasonTokenTypeMismatch, "the token is an OAuth access token, not a session token", errMachineTy)
	}
	return reject(ReasonTokenTypeMismatch, "the token is not a session token (category "+sanitize(p.header.cat)+")")
}

// sanitize bounds attacker-controlled text before it goes into a message:
// printable ASCII only, 64 bytes at most.
func sanitize(s string) string {
	const max = 64
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(b)
}
