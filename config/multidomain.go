package config

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Satellite domains, the Frontend API proxy and the cross-origin sync:
// the clerk keys proxy_url, frontend_api_url, is_satellite, domain,
// sign_in_url, satellite_auto_sync and cross_origin_sync
// (docs/browser-sessions.md, docs/configuration.md).

// frontendAPIHost is the instance's Frontend API host as tokens name it
// (Clerk's originalFrontendApi): the publishable key's, or, for a
// production satellite with a domain, clerk.<domain>. proxy_url never
// changes it.
func (c *Config) frontendAPIHost(pk PublishableKey) string {
	if pk.Live && c.Clerk.IsSatellite && c.Clerk.Domain != "" {
		return "clerk." + strings.ToLower(c.Clerk.Domain)
	}
	return pk.FrontendAPI
}

// FrontendAPIHost is the instance's Frontend API host as tokens name it
// (the publishable key's, or clerk.<domain> for a production satellite),
// and false without a valid publishable key.
func (c *Config) FrontendAPIHost() (string, bool) {
	pk, msg := parsePK(c.Clerk.PublishableKey)
	if msg != "" {
		return "", false
	}
	return c.frontendAPIHost(pk), true
}

// ServesFrontendAPI reports whether sessiongate serves clerk.proxy_url
// itself, by forwarding to Clerk's Frontend API: when proxy_url is a path
// ("/__clerk"), or an absolute URL on public_origin. prefix is its path
// without a trailing slash; absolute is proxy_url when it is a URL.
func (c *Config) ServesFrontendAPI() (prefix, absolute string, ok bool) {
	p := c.Clerk.ProxyURL
	if p == "" {
		return "", "", false
	}
	if strings.HasPrefix(p, "/") {
		return strings.TrimRight(p, "/"), "", true
	}
	if c.PublicOrigin == "" {
		return "", "", false
	}
	u, err := url.Parse(p)
	o, err2 := url.Parse(c.PublicOrigin)
	if err != nil || err2 != nil || !strings.EqualFold(u.Scheme, o.Scheme) || !strings.EqualFold(u.Host, o.Host) {
		return "", "", false
	}
	return strings.TrimRight(u.Path, "/"), strings.TrimRight(p, "/"), true
}

// CrossOriginSyncEnabled reports whether a primary domain runs Clerk's
// primary-domain-cross-origin-sync: cross_origin_sync, default true; never
// on a satellite.
func (k *Clerk) CrossOriginSyncEnabled() bool {
	if k.IsSatellite {
		return false
	}
	return k.CrossOriginSync == nil || *k.CrossOriginSync
}

// validateMultiDomain checks proxy_url, frontend_api_url and the satellite
// keys.
func (c *Config) validateMultiDomain(ps *problems, pk PublishableKey, pkOK bool) {
	k := &c.Clerk
	if k.ProxyURL != "" {
		if strings.HasPrefix(k.ProxyURL, "/") {
			if msg := checkProxyPath(k.ProxyURL); msg != "" {
				ps.add("clerk.proxy_url", "%s", msg)
			}
		} else if msg := checkURL(k.ProxyURL, urlOpts{path: true}); msg != "" {
			ps.add("clerk.proxy_url", "%s (or a path on the application's origin, such as /__clerk)", msg)
		}
	}
	prefix, _, serves := c.ServesFrontendAPI()
	if serves {
		switch {
		case prefix == "" || prefix == "/":
			ps.add("clerk.proxy_url", "sessiongate serves it as Clerk's Frontend API: it needs a path, such as /__clerk")
		case prefix == "/_sessiongate" || strings.HasPrefix(prefix, "/_sessiongate/"):
			ps.add("clerk.proxy_url", "%q is under /_sessiongate/, which sessiongate reserves", prefix)
		}
		if k.SecretKey == "" {
			ps.add("clerk.proxy_url", "sessiongate serves %s as Clerk's Frontend API proxy and needs clerk.secret_key (CLERK_SECRET_KEY) to forward to Clerk", prefix)
		}
		for i, r := range c.Routes {
			p := strings.TrimRight(r.Path, "/")
			if prefix != "" && (p == prefix || strings.HasPrefix(p, prefix+"/")) {
				ps.add(routeKey(i, "path"), "%q is under clerk.proxy_url's path %s, which sessiongate serves as Clerk's Frontend API: the route would never be used", r.Path, prefix)
			}
		}
	}
	if k.FrontendAPIURL != "" {
		if !serves {
			ps.add("clerk.frontend_api_url", "is used only when sessiongate serves clerk.proxy_url (a path, or a URL on public_origin)")
		} else if msg := checkURL(k.FrontendAPIURL, urlOpts{path: true, secure: true}); msg != "" {
			ps.add("clerk.frontend_api_url", "%s (the secret key is sent there)", msg)
		}
	}
	if k.Domain != "" {
		if !k.IsSatellite {
			ps.add("clerk.domain", "is used only with clerk.is_satellite: true (a primary domain's Frontend API comes from the publishable key)")
		} else if msg := checkDomain(k.Domain); msg != "" {
			ps.add("clerk.domain", "%s", msg)
		}
	}
	if k.SatelliteAutoSync && !k.IsSatellite {
		ps.add("clerk.satellite_auto_sync", "needs clerk.is_satellite: true")
	}
	if k.SignInURL != "" {
		switch {
		case !k.IsSatellite:
			ps.add("clerk.sign_in_url", "is a satellite's sign-in page on the primary domain (set clerk.is_satellite); sessiongate's own sign-in redirect is the top-level sign_in_url")
		default:
			if msg := checkURL(k.SignInURL, urlOpts{path: true, query: true}); msg != "" {
				ps.add("clerk.sign_in_url", "%s", msg)
			} else if c.PublicOrigin != "" {
				u, _ := url.Parse(k.SignInURL)
				if o, err := url.Parse(c.PublicOrigin); err == nil && strings.EqualFold(u.Scheme, o.Scheme) && strings.EqualFold(u.Host, o.Host) {
					ps.add("clerk.sign_in_url", "must be on another origin than public_origin: it is the primary domain's sign-in page")
				}
			}
		}
	}
	if k.IsSatellite {
		if k.Domain == "" && k.ProxyURL == "" {
			ps.add("clerk.is_satellite", "a satellite needs clerk.domain or clerk.proxy_url (its Frontend API)")
		}
		if pkOK && !pk.Live && k.SignInURL == "" {
			ps.add("clerk.sign_in_url", "required for a development satellite (pk_test_): the primary domain's sign-in page, where the satellite syncs")
		}
		if k.CrossOriginSync != nil && *k.CrossOriginSync {
			ps.add("clerk.cross_origin_sync", "runs on a primary domain only (clerk.is_satellite is true)")
		}
	}
}

// checkProxyPath checks a proxy_url given as a path.
func checkProxyPath(p string) string {
	t := strings.TrimRight(p, "/")
	switch {
	case t == "":
		return "\"/\" would send every request to Clerk: use a path such as /__clerk"
	case strings.HasPrefix(p, "//"), strings.ContainsAny(p, "?#;\\% \t\r\n"), path.Clean(t) != t:
		return "must be a clean path such as /__clerk (no \"..\", \"//\", query, fragment, ';', '%' or backslash)"
	}
	return ""
}

// checkDomain checks clerk.domain: a host name, with an optional port.
func checkDomain(d string) string {
	if strings.Contains(d, "://") || strings.ContainsAny(d, "/?#@ ") {
		return "must be a bare domain such as satellite.example.com (no scheme or path)"
	}
	host := d
	if i := strings.LastIndexByte(d, ':'); i >= 0 {
		host = d[:i]
	}
	if host == "" || !strings.Contains(host, ".") && !strings.EqualFold(host, "localhost") {
		return "must be a domain name such as satellite.example.com"
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':') {
			return "must be a domain name such as satellite.example.com"
		}
	}
	return ""
}

func routeKey(i int, k string) string { return fmt.Sprintf("routes[%d].%s", i, k) }
