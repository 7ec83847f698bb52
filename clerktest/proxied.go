package clerktest

// Requests through a Frontend API proxy: an application that serves Clerk's
// Frontend API on its own origin (https://app.example.com/__clerk) forwards
// each request with Clerk-Proxy-Url (the proxy's public URL) and
// Clerk-Secret-Key, and the client's address in X-Forwarded-For
// (https://clerk.com/docs/guides/dashboard/dns-domains/proxy-fapi). The fake
// checks them on its Frontend API endpoints as the real one would: a request
// that carries either header must carry both, with the instance's secret key
// and an absolute proxy URL (the configured one, after SetProxyURL).

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
)

// Headers a Frontend API proxy adds.
const (
	ProxyURLHeader    = "Clerk-Proxy-Url"
	ProxySecretHeader = "Clerk-Secret-Key"
)

// maxProxiedRecords bounds ProxiedRequests.
const maxProxiedRecords = 256

// ProxiedRequest is what the fake saw of an accepted request that came
// through a Frontend API proxy. The secret key is not kept.
type ProxiedRequest struct {
	// Method, Path and RawQuery are the request's, as the fake received
	// them.
	Method, Path, RawQuery string
	// ProxyURL is Clerk-Proxy-Url.
	ProxyURL string
	// ForwardedFor is X-Forwarded-For.
	ForwardedFor string
	// Host is the request's Host.
	Host string
	// Cookies are the names of the cookies sent, in order.
	Cookies []string
	// Header is every other header, with Clerk-Secret-Key removed.
	Header http.Header
}

// SetProxyURL makes the fake accept proxied requests only with this
// Clerk-Proxy-Url, the proxy URL configured for the instance in Clerk's
// dashboard. Empty (the default): any absolute http(s) URL.
func (i *Instance) SetProxyURL(u string) {
	i.frontend.mu.Lock()
	defer i.frontend.mu.Unlock()
	i.frontend.proxyURL = u
}

// ProxiedRequests returns the accepted requests that came through a Frontend
// API proxy, oldest first (the last 256).
func (i *Instance) ProxiedRequests() []ProxiedRequest {
	i.frontend.mu.Lock()
	defer i.frontend.mu.Unlock()
	return append([]ProxiedRequest(nil), i.frontend.proxied...)
}

// frontendAPI wraps a Frontend API endpoint with the proxy checks.
func (i *Instance) frontendAPI(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pu, hasURL := r.Header[ProxyURLHeader]
		sk, hasSecret := r.Header[ProxySecretHeader]
		if !hasURL && !hasSecret {
			h(w, r)
			return
		}
		if len(sk) != 1 || !i.secretMatches(sk[0]) {
			writeClerkError(w, http.StatusUnauthorized, "authentication_invalid", "Invalid authentication",
				"A proxied Frontend API request needs the instance's secret key in Clerk-Secret-Key")
			return
		}
		if len(pu) != 1 || !absoluteHTTPURL(pu[0]) {
			writeClerkError(w, http.StatusBadRequest, "proxy_url_invalid", "Invalid proxy URL",
				"Clerk-Proxy-Url must be one absolute http(s) URL without query or fragment")
			return
		}
		i.frontend.mu.Lock()
		want := i.frontend.proxyURL
		i.frontend.mu.Unlock()
		if want != "" && strings.TrimRight(pu[0], "/") != strings.TrimRight(want, "/") {
			writeClerkError(w, http.StatusBadRequest, "proxy_url_invalid", "Invalid proxy URL",
				"Clerk-Proxy-Url is not the proxy URL configured for this instance")
			return
		}
		rec := ProxiedRequest{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ProxyURL: pu[0],
			ForwardedFor: r.Header.Get("X-Forwarded-For"), Host: r.Host, Header: r.Header.Clone(),
		}
		rec.Header.Del(ProxySecretHeader)
		for _, c := range r.Cookies() {
			rec.Cookies = append(rec.Cookies, c.Name)
		}
		i.frontend.mu.Lock()
		if len(i.frontend.proxied) >= maxProxiedRecords {
			i.frontend.proxied = i.frontend.proxied[1:]
		}
		i.frontend.proxied = append(i.frontend.proxied, rec)
		i.frontend.mu.Unlock()
		h(w, r)
	})
}

// secretMatches compares v with the secret key in constant time (both
// hashed, so the length of a guess tells nothing).
func (i *Instance) secretMatches(v string) bool {
	got := sha256.Sum256([]byte(v))
	want := sha256.Sum256([]byte(i.secretKey))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func absoluteHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil &&
		u.RawQuery == "" && !u.ForceQuery && u.Fragment == ""
}
