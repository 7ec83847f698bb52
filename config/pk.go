package config

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strings"
)

// PublishableKey is what a Clerk publishable key encodes.
type PublishableKey struct {
	// Live is true for pk_live_ (a production instance), false for pk_test_.
	Live bool
	// FrontendAPI is the instance's Frontend API host
	// ("clerk.example.com"); the token issuer is "https://" + FrontendAPI.
	FrontendAPI string
	// CookieSuffix is the suffix of the instance's suffixed cookies
	// ("__session_<suffix>").
	CookieSuffix string
}

// ParsePublishableKey decodes pk as Clerk's SDKs do: a pk_live_ or pk_test_
// prefix, exactly three "_"-separated parts, a standard-base64 body (padding
// optional) decoding to "<frontend api host>$" with exactly one "$", at the
// end, and a "." in the host. The cookie suffix is the first 8 characters of
// the URL-alphabet base64 of SHA-1 over the whole key string.
func ParsePublishableKey(pk string) (PublishableKey, error) {
	k, msg := parsePK(pk)
	if msg != "" {
		return PublishableKey{}, errors.New("config: publishable key: " + msg)
	}
	return k, nil
}

// parsePK returns the problem as a message without the key in it.
func parsePK(pk string) (PublishableKey, string) {
	var k PublishableKey
	switch {
	case strings.HasPrefix(pk, "pk_live_"):
		k.Live = true
	case strings.HasPrefix(pk, "pk_test_"):
	default:
		return k, "must start with pk_live_ or pk_test_"
	}
	parts := strings.Split(pk, "_")
	if len(parts) != 3 {
		return k, "must have exactly three _-separated parts"
	}
	dec, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(parts[2], "="))
	if err != nil {
		return k, "body is not base64"
	}
	host := string(dec)
	switch {
	case !strings.HasSuffix(host, "$"):
		return k, "decoded body does not end with $"
	case strings.Count(host, "$") != 1:
		return k, "decoded body has more than one $"
	case !strings.Contains(host, "."):
		return k, "decoded Frontend API host has no dot"
	}
	host = strings.TrimSuffix(host, "$")
	if strings.ContainsAny(host, "/?#@ \t\r\n\\") {
		return k, "decoded Frontend API host is not a host name"
	}
	k.FrontendAPI = host
	sum := sha1.Sum([]byte(pk))
	k.CookieSuffix = base64.URLEncoding.EncodeToString(sum[:])[:8]
	return k, ""
}
