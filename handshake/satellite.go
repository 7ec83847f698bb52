package handshake

// Satellite domains and the cross-origin sync of a primary domain, as
// @clerk/backend runs them (packages/backend/src/tokens/request.ts,
// authenticateContext.ts, https://github.com/clerk/javascript; Clerk's
// docs: https://clerk.com/docs/guides/dashboard/dns-domains/satellite-domains).
//
// A satellite is an application on another registrable domain that shares
// the primary domain's sessions. Its browser holds no Clerk cookies until
// it syncs: a production satellite through its own Frontend API
// (clerk.<satellite domain>, or its proxy URL), which fetches the session
// of the primary's; a development satellite by sending the browser to the
// primary's sign-in page with __clerk_redirect_url, which the primary's SDK
// answers with its dev-browser token and __clerk_synced=true. Since
// @clerk/backend 3 (satelliteAutoSync, #7597, default false since #8001) a
// first visit without cookies is signed out without a sync; clerk-js marks
// the URL it returns to after signing in with __clerk_synced=false, which
// asks for one.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/sessiongate/sessiongate/internal/logctx"
	"github.com/sessiongate/sessiongate/middleware"
)

// Clerk's reasons of the multi-domain handshakes.
const (
	// ReasonSatelliteNeedsSyncing: a satellite's navigation syncs the
	// primary domain's session.
	ReasonSatelliteNeedsSyncing = "satellite-needs-syncing"
	// ReasonPrimaryRespondsToSyncing: a development primary sends a
	// satellite's sync request back with its dev-browser token.
	ReasonPrimaryRespondsToSyncing = "primary-responds-to-syncing"
	// ReasonPrimaryDomainCrossOriginSync: a signed-in navigation of a
	// primary domain that comes from another site takes one handshake.
	ReasonPrimaryDomainCrossOriginSync = "primary-domain-cross-origin-sync"
)

// Query parameters of the multi-domain flows.
const (
	// SyncedParam is __clerk_synced: "false" asks a satellite to sync,
	// "true" says a sync just completed (no new one).
	SyncedParam = "__clerk_synced"
	// RedirectURLParam is __clerk_redirect_url: the satellite URL a
	// development satellite's sync request returns to.
	RedirectURLParam = "__clerk_redirect_url"

	syncNeeded    = "false"
	syncCompleted = "true"
)

// Development account-portal hosts, trusted as referrers on development
// instances only (@clerk/shared url.ts; #9145 stopped trusting them in
// production, where anybody can obtain one).
var (
	legacyDevSuffixes  = []string{".lcl.dev", ".lclstage.dev", ".lclclerk.com"}
	currentDevSuffixes = []string{".accounts.dev", ".accountsstage.dev", ".accounts.lclclerk.com"}
)

// multiDomain is a Handshaker's satellite and cross-origin settings.
type multiDomain struct {
	satellite   bool
	autoSync    bool
	signIn      *url.URL        // a development satellite's sync target
	syncOrigins map[string]bool // where a development primary answers syncs
	crossOrigin bool
}

func newMultiDomain(cfg Config) (multiDomain, error) {
	m := multiDomain{satellite: cfg.Satellite, autoSync: cfg.SatelliteAutoSync, crossOrigin: cfg.CrossOriginSync && !cfg.Satellite}
	if cfg.SignInURL != "" {
		u, err := url.Parse(cfg.SignInURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return m, fmt.Errorf("handshake: Config.SignInURL %q is not an absolute http(s) URL", cfg.SignInURL)
		}
		m.signIn = u
	}
	if cfg.Satellite && !cfg.Production && m.signIn == nil {
		return m, errors.New("handshake: a development satellite needs Config.SignInURL (the primary domain's sign-in page)")
	}
	for _, o := range cfg.SyncOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return m, fmt.Errorf("handshake: Config.SyncOrigins: %q is not an origin", o)
		}
		if m.syncOrigins == nil {
			m.syncOrigins = map[string]bool{}
		}
		m.syncOrigins[normOrigin(u)] = true
	}
	return m, nil
}

// multiDomain is the multi-domain step of the cookie path, before the
// dev-browser step: a satellite's sync, or a development primary's answer
// to one. nil goes on.
func (q *request) multiDomain() *Outcome {
	m := &q.h.multi
	r := q.r
	if !m.satellite {
		return q.answerSync()
	}
	// Only a top-level document GET syncs (not an iframe).
	if r.Method != "GET" || r.Header.Get("Sec-Fetch-Dest") != "document" {
		return nil
	}
	synced := q.queryValues().Get(SyncedParam)
	if synced == syncCompleted {
		return nil
	}
	needsSync := synced == syncNeeded
	hasCookies := q.session != "" || q.clientUAT != 0
	if !m.autoSync && !hasCookies && !needsSync {
		return q.signedOut(middleware.ReasonSessionTokenMissing, "no session token was presented (a satellite syncs after signing in, or with satellite_auto_sync)",
			ReasonSessionTokenAndUATMissing, nil)
	}
	if hasCookies && !needsSync {
		return nil // the normal flow, which renews an expired session
	}
	fallback := &middleware.Error{Reason: middleware.ReasonSessionTokenMissing, Message: "the satellite has not synced the primary domain's session"}
	if q.h.production {
		return q.maybeHandshake(ReasonSatelliteNeedsSyncing, fallback)
	}
	page := q.public()
	if originOf(m.signIn.String()) == originOf(page) {
		q.h.log.Error("Clerk handshake: clerk.sign_in_url is on the satellite's own origin; a development satellite syncs through the primary domain's sign-in page",
			logctx.Field(q.r.Context()))
		return q.signedOut("", "", ReasonSatelliteNeedsSyncing, fallback)
	}
	target := *m.signIn
	v := target.Query()
	v.Add(RedirectURLParam, page)
	target.RawQuery = v.Encode()
	return q.maybeRedirect(ReasonSatelliteNeedsSyncing, fallback, target.String())
}

// answerSync is a development primary's answer to a satellite's sync
// request (?__clerk_redirect_url=<satellite URL>): 307 back there with the
// primary's dev-browser token and __clerk_synced=true. Clerk's SDK sends
// any URL a token; sessiongate only a navigation's, and only to a URL on
// one of Config.SyncOrigins (anything else is ignored: the normal flow
// goes on), or the parameter would be an open redirect that hands out the
// browser's dev-browser token.
func (q *request) answerSync() *Outcome {
	if q.h.production {
		return nil
	}
	raw := q.queryValues().Get(RedirectURLParam)
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		!q.h.multi.syncOrigins[normOrigin(u)] {
		q.h.log.Debug("Clerk handshake: ignoring a satellite sync request for an origin outside clerk.authorized_parties",
			logctx.Field(q.r.Context()))
		return nil
	}
	v := u.Query()
	if dev := q.devToken(); dev != "" {
		v.Add(DevBrowserCookie, dev)
	}
	v.Set(SyncedParam, syncCompleted)
	u.RawQuery = v.Encode()
	o := q.maybeRedirect(ReasonPrimaryRespondsToSyncing, nil, u.String())
	if o.Status != Redirect {
		return nil // not a navigation, or the loop guard: decide the request as it is
	}
	return o
}

// crossOriginSync is Clerk's primary-domain-cross-origin-sync: a signed-in
// document GET of a primary domain whose Referer is another origin, not
// the instance's Frontend API or Account Portal, and that is not already
// part of a handshake, takes one handshake, so that a session ended on a
// satellite is noticed. nil keeps the request signed in (also whenever no
// redirect is possible).
func (q *request) crossOriginSync() *Outcome {
	m := &q.h.multi
	r := q.r
	if !m.crossOrigin || r.Method != "GET" || r.Header.Get("Sec-Fetch-Dest") != "document" || redirectCount(r) != 0 {
		return nil
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return nil
	}
	ru, err := url.Parse(ref)
	if err != nil || ru.Scheme == "" || ru.Host == "" {
		return nil
	}
	page, err := url.Parse(q.public())
	if err != nil || page.Host == "" || normOrigin(ru) == normOrigin(page) || q.h.knownClerkReferrer(ru, q.public()) {
		return nil
	}
	o := q.maybeHandshake(ReasonPrimaryDomainCrossOriginSync, nil)
	if o.Status != Redirect {
		return nil // forward-auth: stay signed in
	}
	return o
}

// knownClerkReferrer is Clerk's isKnownClerkReferrer after #9145: the
// Frontend API's host, the Account Portal derived from it (clerk.x →
// accounts.x), and, on development instances only, development
// account-portal hosts.
func (h *Handshaker) knownClerkReferrer(ref *url.URL, page string) bool {
	host := strings.ToLower(ref.Hostname())
	base, err := url.Parse(h.baseFor(page))
	if err == nil && strings.EqualFold(base.Hostname(), host) {
		return true
	}
	if !h.production {
		for _, s := range legacyDevSuffixes {
			if strings.HasPrefix(host, "accounts.") && strings.HasSuffix(host, s) {
				return true
			}
		}
		for _, s := range currentDevSuffixes {
			if strings.HasSuffix(host, s) && !strings.HasSuffix(host, ".clerk"+s) {
				return true
			}
		}
	}
	// The Account Portal derived from the Frontend API host; with a proxy
	// URL Clerk's derivation yields no valid origin, so none matches.
	if h.relative || h.base != "https://"+h.fapi {
		return false
	}
	return normOrigin(ref) == "https://"+strings.ToLower(accountsHost(h.fapi))
}

// accountsHost is Clerk's buildAccountsBaseUrl without the scheme:
// clerk.accountsstage. → accountsstage., then the first clerk.accounts. or
// clerk. → accounts.
func accountsHost(fapi string) string {
	s := strings.Replace(fapi, "clerk.accountsstage.", "accountsstage.", 1)
	i := strings.Index(s, "clerk.")
	if i < 0 {
		return s
	}
	if strings.HasPrefix(s[i:], "clerk.accounts.") {
		return s[:i] + "accounts." + s[i+len("clerk.accounts."):]
	}
	return s[:i] + "accounts." + s[i+len("clerk."):]
}

// normOrigin is a URL's origin as browsers compare it: lower-case scheme
// and host, without the scheme's default port.
func normOrigin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

// SignInReturnURL is the redirect_url of a satellite's sign-in redirect:
// the page's URL with __clerk_synced=false (any other __clerk_synced
// removed, every other byte of the query kept), as clerk-js's
// buildSignInUrl marks it on a satellite. Back from signing in on the
// primary domain, that navigation syncs the new session.
func SignInReturnURL(raw string) string {
	s := stripQueryParams(raw, SyncedParam)
	frag := ""
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s, frag = s[:i], s[i:]
	}
	switch {
	case !strings.Contains(s, "?"):
		s += "?"
	case !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "&"):
		s += "&"
	}
	return s + SyncedParam + "=" + syncNeeded + frag
}
