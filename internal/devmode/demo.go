package devmode

import (
	"encoding/json"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// DemoIdentity is what the gate told the demo upstream, from the identity
// headers.
type DemoIdentity struct {
	TokenType      string   `json:"token_type,omitempty"`
	UserID         string   `json:"user_id"`
	SessionID      string   `json:"session_id,omitempty"`
	TokenID        string   `json:"token_id,omitempty"`
	Scopes         string   `json:"scopes,omitempty"`
	OrgID          string   `json:"org_id,omitempty"`
	OrgRole        string   `json:"org_role,omitempty"`
	OrgSlug        string   `json:"org_slug,omitempty"`
	OrgPermissions []string `json:"org_permissions,omitempty"`
	ActorID        string   `json:"actor_id,omitempty"`
}

// DemoResponse is the demo upstream's JSON answer.
type DemoResponse struct {
	Path     string            `json:"path"`
	Method   string            `json:"method"`
	Identity *DemoIdentity     `json:"identity"` // null: not signed in
	Headers  map[string]string `json:"headers"`
}

// redactedHeaders are shown as "[redacted]": they carry the session token.
var redactedHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// DemoUpstream is the app behind the gate in dev mode: it shows what it
// received. Browsers (Accept: text/html…) get a page; anything else JSON.
type DemoUpstream struct {
	Prefix     string // identity header prefix, "X-Sessiongate-"
	SignInURL  string // the page's sign-in link
	SignOutURL string // the page's sign-out link
}

func (d *DemoUpstream) identity(h http.Header) *DemoIdentity {
	get := func(name string) string { return h.Get(d.Prefix + name) }
	id := &DemoIdentity{
		TokenType: get("Token-Type"),
		TokenID:   get("Token-Id"),
		Scopes:    get("Scopes"),
		UserID:    get("User-Id"),
		SessionID: get("Session-Id"),
		OrgID:     get("Org-Id"),
		OrgRole:   get("Org-Role"),
		OrgSlug:   get("Org-Slug"),
		ActorID:   get("Actor-Id"),
	}
	if p := get("Org-Permissions"); p != "" {
		for _, s := range strings.Split(p, ",") {
			id.OrgPermissions = append(id.OrgPermissions, strings.TrimSpace(s))
		}
	}
	if id.UserID == "" {
		return nil
	}
	return id
}

// ServeHTTP answers with what r carried: its identity headers and the
// others, with those that carry the session token redacted.
func (d *DemoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp := DemoResponse{
		Path:     r.URL.Path,
		Method:   r.Method,
		Identity: d.identity(r.Header),
		Headers:  make(map[string]string, len(r.Header)),
	}
	for name, vs := range r.Header {
		if slices.ContainsFunc(redactedHeaders, func(s string) bool { return strings.EqualFold(s, name) }) {
			resp.Headers[name] = "[redacted]"
			continue
		}
		resp.Headers[name] = strings.Join(vs, ", ")
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(strings.ToLower(r.Header.Get("Accept")), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = demoPage.Execute(w, struct {
			DemoResponse
			HeaderNames        []string
			SignInURL, SignOut string
		}{resp, slices.Sorted(maps.Keys(resp.Headers)), d.SignInURL, d.SignOutURL})
		return
	}
	b, err := json.MarshalIndent(resp, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sessiongate dev — demo upstream</title>
<style>
body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
code{word-break:break-all}
</style>
</head>
<body>
<h1>Demo upstream</h1>
<p>This page is served by the demo app behind sessiongate. It shows what the gate sent it for
<code>{{.Method}} {{.Path}}</code>.</p>
{{with .Identity}}
<h2>Signed in as <code id="user-id">{{.UserID}}</code></h2>
<table>
<tr><th>User id</th><td><code>{{.UserID}}</code></td></tr>
<tr><th>Session id</th><td><code>{{.SessionID}}</code></td></tr>
{{if .OrgID}}<tr><th>Organization</th><td><code>{{.OrgID}}</code>{{if .OrgSlug}} ({{.OrgSlug}}){{end}}</td></tr>
<tr><th>Role</th><td><code>{{.OrgRole}}</code></td></tr>{{end}}
{{if .OrgPermissions}}<tr><th>Permissions</th><td>{{range .OrgPermissions}}<code>{{.}}</code> {{end}}</td></tr>{{end}}
{{if .ActorID}}<tr><th>Impersonated by</th><td><code>{{.ActorID}}</code></td></tr>{{end}}
</table>
<p><a href="{{$.SignOut}}">Sign out</a></p>
{{else}}
<h2 id="not-signed-in">Not signed in</h2>
<p><a href="{{.SignInURL}}">Sign in</a> on the fake Clerk instance.</p>
{{end}}
<h2>Headers received</h2>
<table>
{{range .HeaderNames}}<tr><th>{{.}}</th><td><code>{{index $.Headers .}}</code></td></tr>
{{end}}</table>
</body>
</html>
`))
