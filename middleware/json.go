package middleware

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// A narrow, strict JSON reader for JOSE headers and claim sets.
//
// encoding/json cannot be used here: it silently lets the last of two members
// with the same name win, while other parsers keep the first, and a token
// whose meaning depends on the parser MUST be rejected (docs/security.md). It
// also decodes through reflection and generic maps, which is most of the cost
// of a cold verification. This reader walks the bytes once, decodes only the
// members sessiongate uses, validates everything else, and refuses:
//   - two member names in one object that are equal after unescaping and
//     case folding (see sameFold),
//   - invalid UTF-8, unescaped control characters, lone surrogates,
//   - nesting deeper than maxJSONDepth, trailing bytes after the value.

const maxJSONDepth = 32

var errJSON = errors.New("malformed JSON")

type jsonReader struct {
	data []byte
	pos  int
	// names is scratch space for the duplicate check of one object level; an
	// object's names are appended and truncated back when it ends.
	names []string
}

func (r *jsonReader) ws() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.pos >= len(r.data) {
		return 0
	}
	return r.data[r.pos]
}

func (r *jsonReader) expect(c byte) error {
	if r.peek() != c {
		return errJSON
	}
	r.pos++
	return nil
}

// end checks that nothing but whitespace follows the top-level value.
func (r *jsonReader) end() error {
	r.ws()
	if r.pos != len(r.data) {
		return errJSON
	}
	return nil
}

// object reads one object, calling member for each member name; member MUST
// consume the value. Duplicate names fail the whole object.
func (r *jsonReader) object(depth int, member func(name string) error) error {
	if depth > maxJSONDepth {
		return errJSON
	}
	if err := r.expect('{'); err != nil {
		return err
	}
	base := len(r.names)
	defer func() { r.names = r.names[:base] }()
	var seen map[string]struct{}
	if r.peek() == '}' {
		r.pos++
		return nil
	}
	for {
		if r.peek() != '"' {
			return errJSON
		}
		name, err := r.str()
		if err != nil {
			return err
		}
		// Pairwise for the small objects of real tokens; a map keyed by the
		// folded name once an object is large, so a hostile 16 KiB token
		// cannot make the check quadratic.
		if seen != nil {
			key := foldName(name)
			if _, dup := seen[key]; dup {
				return errDuplicateMember
			}
			seen[key] = struct{}{}
		} else {
			for _, prev := range r.names[base:] {
				if sameFold(prev, name) {
					return errDuplicateMember
				}
			}
			r.names = append(r.names, name)
			if len(r.names)-base > 32 {
				seen = make(map[string]struct{}, 64)
				for _, prev := range r.names[base:] {
					seen[foldName(prev)] = struct{}{}
				}
			}
		}
		if err := r.expect(':'); err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return nil
		default:
			return errJSON
		}
	}
}

var errDuplicateMember = errors.New("duplicate JSON member name (names are compared case-insensitively)")

// Member names are compared as encoding/json compares them with a struct's
// field names: equal under Unicode simple case folding (strings.EqualFold),
// so "sub", "SUB" and "ſub" (long s) are one name, and "kid" and "\u212aid"
// (Kelvin sign) too. encoding/json lets the last of such members win where
// this reader reads only the exact name: an upstream that decodes the
// forwarded token with it would read another value than the one verified.
// Refusing both spellings in one object leaves no such disagreement.
//
// sameFold and foldName are two forms of that one relation:
// sameFold(a, b) == (foldName(a) == foldName(b)) for valid UTF-8, which is
// all the reader lets through.

// sameFold reports whether a and b are one name under case folding.
func sameFold(a, b string) bool { return strings.EqualFold(a, b) }

// foldName maps a name to a canonical member of its folding class: every
// rune replaced by the smallest rune of its unicode.SimpleFold orbit (as
// encoding/json's own foldName does), then ASCII upper-case letters
// lower-cased, so that the common name, lower-case ASCII, is its own
// canonical form and costs no allocation.
func foldName(name string) string {
	i := 0
	for i < len(name) && name[i] < utf8.RuneSelf && (name[i] < 'A' || name[i] > 'Z') {
		i++
	}
	if i == len(name) {
		return name
	}
	b := make([]byte, i, len(name))
	copy(b, name[:i])
	for i < len(name) {
		r, n := rune(name[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(name[i:])
			r = foldRune(r)
		}
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		b = utf8.AppendRune(b, r)
		i += n
	}
	return string(b)
}

// foldRune returns the smallest rune of r's case-folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// skip validates and skips any value.
func (r *jsonReader) skip(depth int) error {
	if depth > maxJSONDepth {
		return errJSON
	}
	switch c := r.peek(); {
	case c == '{':
		return r.object(depth+1, func(string) error { return r.skip(depth + 1) })
	case c == '[':
		return r.array(depth+1, func() error { return r.skip(depth + 1) })
	case c == '"':
		_, err := r.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, err := r.number()
		return err
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	default:
		return errJSON
	}
}

func (r *jsonReader) array(depth int, elem func() error) error {
	if depth > maxJSONDepth {
		return errJSON
	}
	if err := r.expect('['); err != nil {
		return err
	}
	if r.peek() == ']' {
		r.pos++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return nil
		default:
			return errJSON
		}
	}
}

func (r *jsonReader) literal(lit string) error {
	r.ws()
	if len(r.data)-r.pos < len(lit) || string(r.data[r.pos:r.pos+len(lit)]) != lit {
		return errJSON
	}
	r.pos += len(lit)
	return nil
}

// null consumes a null literal if one is next and reports whether it did.
// Clerk's SDKs treat a null claim as absent; so does sessiongate.
func (r *jsonReader) null() bool {
	if r.peek() == 'n' && r.literal("null") == nil {
		return true
	}
	return false
}

// str reads a string. The fast path returns a string that shares nothing with
// the input; escapes take the slow path.
func (r *jsonReader) str() (string, error) {
	if err := r.expect('"'); err != nil {
		return "", err
	}
	start := r.pos
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			s := r.data[start:r.pos]
			r.pos++
			if !utf8.Valid(s) {
				return "", errJSON
			}
			return string(s), nil
		case c == '\\':
			return r.strSlow(start)
		case c < 0x20:
			return "", errJSON
		default:
			r.pos++
		}
	}
	return "", errJSON
}

func (r *jsonReader) strSlow(start int) (string, error) {
	buf := make([]byte, 0, r.pos-start+16)
	buf = append(buf, r.data[start:r.pos]...)
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			if !utf8.Valid(buf) {
				return "", errJSON
			}
			return string(buf), nil
		case c < 0x20:
			return "", errJSON
		case c != '\\':
			buf = append(buf, c)
			r.pos++
			continue
		}
		// An escape.
		if r.pos+1 >= len(r.data) {
			return "", errJSON
		}
		e := r.data[r.pos+1]
		r.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r1, ok := r.hex4()
			if !ok {
				return "", errJSON
			}
			if utf16.IsSurrogate(r1) {
				// Only a high surrogate followed by an escaped low one is a character.
				if r.pos+1 >= len(r.data) || r.data[r.pos] != '\\' || r.data[r.pos+1] != 'u' {
					return "", errJSON
				}
				r.pos += 2
				r2, ok := r.hex4()
				if !ok {
					return "", errJSON
				}
				dec := utf16.DecodeRune(r1, r2)
				if dec == utf8.RuneError {
					return "", errJSON
				}
				r1 = dec
			}
			buf = utf8.AppendRune(buf, r1)
		default:
			return "", errJSON
		}
	}
	return "", errJSON
}

func (r *jsonReader) hex4() (rune, bool) {
	if len(r.data)-r.pos < 4 {
		return 0, false
	}
	var v rune
	for _, c := range r.data[r.pos : r.pos+4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			v |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	r.pos += 4
	return v, true
}

// number reads a JSON number and returns its text and whether it is an
// integer literal (no fraction, no exponent).
func (r *jsonReader) number() ([]byte, bool, error) {
	r.ws()
	start := r.pos
	integer := true
	if r.pos < len(r.data) && r.data[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(r.data) && r.data[r.pos] == '0':
		r.pos++
	case r.pos < len(r.data) && r.data[r.pos] >= '1' && r.data[r.pos] <= '9':
		r.digits()
	default:
		return nil, false, errJSON
	}
	if r.pos < len(r.data) && r.data[r.pos] == '.' {
		integer = false
		r.pos++
		if r.digits() == 0 {
			return nil, false, errJSON
		}
	}
	if r.pos < len(r.data) && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		integer = false
		r.pos++
		if r.pos < len(r.data) && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if r.digits() == 0 {
			return nil, false, errJSON
		}
	}
	return r.data[start:r.pos], integer, nil
}

func (r *jsonReader) digits() int {
	n := 0
	for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
		r.pos++
		n++
	}
	return n
}

// int64 reads an integer literal that fits in an int64. A fraction, an
// exponent or any other JSON type is a type error.
func (r *jsonReader) int64() (int64, error) {
	c := r.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, errClaimType
	}
	text, integer, err := r.number()
	if err != nil {
		return 0, err
	}
	if !integer {
		return 0, errClaimType
	}
	v, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil {
		return 0, errClaimType
	}
	return v, nil
}

// string reads a value that must be a JSON string.
func (r *jsonReader) string() (string, error) {
	if r.peek() != '"' {
		if err := r.skip(1); err != nil {
			return "", err
		}
		return "", errClaimType
	}
	return r.str()
}

// errClaimType is a well-formed value of the wrong JSON type.
var errClaimType = errors.New("claim of the wrong JSON type")
