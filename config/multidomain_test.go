package config

import (
	"strings"
	"testing"
)

// pumaConfig is a valid configuration of the note's production instance,
// issuer derived.
func pumaConfig(pk string) Config {
	c := Defaults()
	c.Upstream = "http://127.0.0.1:3000"
	c.Clerk.PublishableKey = pk
	return c
}

func TestMultiDomainRefuses(t *testing.T) {
	t.Parallel()
	yes := true
	for _, tc := range []struct {
		name   string
		pk     string
		mutate func(c *Config)
		key    string
		msg    string
	}{
		{"a satellite without domain or proxy_url", pkLivePuma, func(c *Config) { c.Clerk.IsSatellite = true }, "clerk.is_satellite", "clerk.domain or clerk.proxy_url"},
		{"domain without is_satellite", pkLivePuma, func(c *Config) { c.Clerk.Domain = "satellite.example" }, "clerk.domain", "is_satellite"},
		{"domain with a scheme", pkLivePuma, func(c *Config) { c.Clerk.IsSatellite, c.Clerk.Domain = true, "https://satellite.example" }, "clerk.domain", "bare domain"},
		{"domain with a path", pkLivePuma, func(c *Config) { c.Clerk.IsSatellite, c.Clerk.Domain = true, "satellite.example/x" }, "clerk.domain", "bare domain"},
		{"satellite_auto_sync on a primary", pkLivePuma, func(c *Config) { c.Clerk.SatelliteAutoSync = true }, "clerk.satellite_auto_sync", "is_satellite"},
		{"clerk.sign_in_url on a primary", pkLivePuma, func(c *Config) { c.Clerk.SignInURL = "https://app.example.com/sign-in" }, "clerk.sign_in_url", "top-level sign_in_url"},
		{"a development satellite without clerk.sign_in_url", pkTestPuma, func(c *Config) { c.Clerk.IsSatellite, c.Clerk.Domain = true, "satellite.example" }, "clerk.sign_in_url", "required"},
		{"clerk.sign_in_url relative", pkTestPuma, func(c *Config) {
			c.Clerk.IsSatellite, c.Clerk.Domain, c.Clerk.SignInURL = true, "satellite.example", "/sign-in"
		}, "clerk.sign_in_url", "absolute"},
		{"clerk.sign_in_url on the satellite's own origin", pkTestPuma, func(c *Config) {
			c.Clerk.IsSatellite, c.Clerk.Domain, c.Clerk.SignInURL = true, "satellite.example", "https://satellite.example/sign-in"
			c.PublicOrigin = "https://satellite.example"
		}, "clerk.sign_in_url", "another origin"},
		{"cross_origin_sync on a satellite", pkLivePuma, func(c *Config) {
			c.Clerk.IsSatellite, c.Clerk.Domain, c.Clerk.CrossOriginSync = true, "satellite.example", &yes
		}, "clerk.cross_origin_sync", "primary"},
		{"proxy_url /", pkLivePuma, func(c *Config) { c.Clerk.ProxyURL, c.Clerk.SecretKey = "/", "sk_live_x" }, "clerk.proxy_url", "every request"},
		{"proxy_url with dot segments", pkLivePuma, func(c *Config) { c.Clerk.ProxyURL, c.Clerk.SecretKey = "/a/../__clerk", "sk_live_x" }, "clerk.proxy_url", "clean path"},
		{"proxy_url with an encoded character", pkLivePuma, func(c *Config) { c.Clerk.ProxyURL, c.Clerk.SecretKey = "/__cl%65rk", "sk_live_x" }, "clerk.proxy_url", "clean path"},
		{"proxy_url under /_sessiongate/", pkLivePuma, func(c *Config) { c.Clerk.ProxyURL, c.Clerk.SecretKey = "/_sessiongate/clerk", "sk_live_x" }, "clerk.proxy_url", "reserves"},
		{"served proxy_url without a secret key", pkLivePuma, func(c *Config) {
			c.Clerk.ProxyURL, c.PublicOrigin = "https://app.example.com/__clerk", "https://app.example.com"
		}, "clerk.proxy_url", "clerk.secret_key"},
		{"a route under the served proxy path", pkLivePuma, func(c *Config) {
			c.Clerk.ProxyURL, c.Clerk.SecretKey = "/__clerk", "sk_live_x"
			c.Routes = []Route{{Path: "/", Upstream: c.Upstream}, {Path: "/__clerk/v1", Upstream: c.Upstream}}
		}, "routes[1].path", "never be used"},
		{"frontend_api_url without a served proxy", pkLivePuma, func(c *Config) { c.Clerk.FrontendAPIURL = "https://frontend-api.clerk.dev" }, "clerk.frontend_api_url", "only when"},
		{"frontend_api_url in cleartext", pkLivePuma, func(c *Config) {
			c.Clerk.ProxyURL, c.Clerk.SecretKey, c.Clerk.FrontendAPIURL = "/__clerk", "sk_live_x", "http://fapi.example.com"
		}, "clerk.frontend_api_url", "loopback"},
		{"issuer of another satellite", pkLivePuma, func(c *Config) {
			c.Clerk.IsSatellite, c.Clerk.Domain, c.Clerk.Issuer = true, "satellite.example", "https://clerk.other.example"
		}, "clerk.issuer", "clerk.satellite.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pumaConfig(tc.pk)
			tc.mutate(&c)
			c.Normalize()
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !hasKey(problemKeys(t, err), tc.key) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("want %s (%s), got %v", tc.key, tc.msg, err)
			}
		})
	}
}

func TestMultiDomainAccepts(t *testing.T) {
	t.Parallel()
	no := false
	// A production satellite: its Frontend API and issuer are clerk.<domain>.
	c := pumaConfig(pkLivePuma)
	c.Clerk.IsSatellite, c.Clerk.Domain = true, "Satellite.Example"
	c.Normalize()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Clerk.Issuer != "https://clerk.satellite.example" {
		t.Errorf("issuer %q", c.Clerk.Issuer)
	}
	if h, ok := c.FrontendAPIHost(); !ok || h != "clerk.satellite.example" {
		t.Errorf("FrontendAPIHost %q %v", h, ok)
	}
	if c.Clerk.CrossOriginSyncEnabled() {
		t.Error("cross-origin sync on a satellite")
	}
	// The primary's issuer is accepted on a satellite too.
	c.Clerk.Issuer = "https://clerk.inspired.puma-74.lcl.dev"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// A development satellite: its Frontend API stays the key's.
	d := pumaConfig(pkTestPuma)
	d.Clerk.IsSatellite, d.Clerk.Domain, d.Clerk.SignInURL = true, "localhost:3001", "http://localhost:3000/sign-in"
	d.Clerk.SatelliteAutoSync = true
	d.PublicOrigin = "http://localhost:3001"
	d.Normalize()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Clerk.Issuer != "https://clerk.inspired.puma-74.lcl.dev" {
		t.Errorf("development satellite issuer %q", d.Clerk.Issuer)
	}
	// A satellite through a proxy URL, without domain.
	s := pumaConfig(pkLivePuma)
	s.Clerk.IsSatellite, s.Clerk.ProxyURL = true, "https://clerk-proxy.satellite.example/__clerk"
	s.Normalize()
	if err := s.Validate(); err != nil {
		t.Error(err)
	}

	// The Frontend API proxy: a path is served, a URL on public_origin is
	// served, a URL elsewhere (or without public_origin) is not.
	for _, tc := range []struct {
		proxyURL, publicOrigin string
		prefix, absolute       string
		serves                 bool
	}{
		{"/__clerk", "", "/__clerk", "", true},
		{"/__clerk/", "", "/__clerk", "", true},
		{"https://app.example.com/__clerk", "https://app.example.com", "/__clerk", "https://app.example.com/__clerk", true},
		{"https://APP.example.com/__clerk/", "https://app.example.com", "/__clerk", "https://APP.example.com/__clerk", true},
		{"https://app.example.com/__clerk", "", "", "", false},
		{"https://clerk-proxy.example.com/__clerk", "https://app.example.com", "", "", false},
		{"http://app.example.com/__clerk", "https://app.example.com", "", "", false},
	} {
		c := pumaConfig(pkLivePuma)
		c.Clerk.ProxyURL, c.PublicOrigin, c.Clerk.SecretKey = tc.proxyURL, tc.publicOrigin, "sk_live_x"
		c.Clerk.CrossOriginSync = &no
		c.Normalize()
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.proxyURL, err)
		}
		prefix, abs, ok := c.ServesFrontendAPI()
		if ok != tc.serves || prefix != tc.prefix || abs != tc.absolute {
			t.Errorf("%s on %q: ServesFrontendAPI %q %q %v", tc.proxyURL, tc.publicOrigin, prefix, abs, ok)
		}
		if c.Clerk.CrossOriginSyncEnabled() {
			t.Error("cross_origin_sync: false is on")
		}
	}
	if p := pumaConfig(pkLivePuma); !p.Clerk.CrossOriginSyncEnabled() {
		t.Error("the cross-origin sync is off by default on a primary")
	}
}
