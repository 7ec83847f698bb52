package clerktest

import (
	"crypto/rand"
	"encoding/hex"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idLen is the length of the random part of Clerk ids (a base62 KSUID).
const idLen = 27

// randomBase62 returns n characters drawn uniformly from base62.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		rand.Read(buf) // never returns an error (crypto/rand, Go 1.24+)
		for _, b := range buf {
			// 248 = 4*62: rejecting the top of the byte range keeps the
			// distribution uniform.
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// newID returns a Clerk-style id: prefix + "_" + 27 base62 characters.
func newID(prefix string) string { return prefix + "_" + randomBase62(idLen) }

// randomHex returns 2n hex characters from n random bytes.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
