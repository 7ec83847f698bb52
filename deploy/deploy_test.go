// Package deploy_test checks that the shipped deployment files stay valid
// and agree with the code: the example configuration loads, the Kubernetes
// manifest is well-formed and probes the right endpoints, and every
// forward-auth recipe lists every identity header.
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/proxy"
)

// Fake but well-formed credentials.
const (
	fakeSecretKey = "sk_live_3vR0q9nTfJx2kLmPa7sWcYb8UeHd4GiZ1oQtNrXy"
	// Frontend API clerk.inspired.puma-74.lcl.dev.
	fakePublishableKey = "pk_live_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
	fakeFrontendAPI    = "https://clerk.inspired.puma-74.lcl.dev"
	fakeWebhookSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	fakeAdminToken     = "0f5e8c1d2b7a49e6a3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6"
	fakeMetricsToken   = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
)

func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(config.Sources{
		File: "sessiongate.yaml",
		Env: envOf(map[string]string{
			"CLERK_SECRET_KEY":             fakeSecretKey,
			"CLERK_PUBLISHABLE_KEY":        fakePublishableKey,
			"CLERK_WEBHOOK_SIGNING_SECRET": fakeWebhookSecret,
			"SESSIONGATE_ADMIN_TOKEN":      fakeAdminToken,
		}),
	})
	if err != nil {
		t.Fatalf("deploy/sessiongate.yaml does not load:\n%v", err)
	}
	if cfg.Clerk.Issuer != fakeFrontendAPI {
		t.Errorf("issuer %q, want %q (derived from the publishable key)", cfg.Clerk.Issuer, fakeFrontendAPI)
	}
	if cfg.Clerk.SecretKey.Reveal() != fakeSecretKey || cfg.Clerk.WebhookSecret.Reveal() != fakeWebhookSecret || cfg.AdminToken.Reveal() != fakeAdminToken {
		t.Error("secrets did not expand from the environment")
	}
	if cfg.Clerk.JWTKey != "" {
		t.Errorf("jwt_key %q: an unset ${CLERK_JWT_KEY} must leave it empty", cfg.Clerk.JWTKey)
	}
	if n := len(cfg.Routes); n != 6 {
		t.Errorf("%d routes, want 6", n)
	}
	for i, r := range cfg.Routes {
		// What the binary refuses today (internal/app) must stay out of the
		// example, which users copy as is.
		if r.SessionCheck != config.SessionCheckOff || r.TokenTemplate != "" {
			t.Errorf("routes[%d]: session_check %q, token_template %q: not supported by the binary yet", i, r.SessionCheck, r.TokenTemplate)
		}
	}
	if cfg.Revocation.Store != "memory" || cfg.Cache.Shared {
		// One process needs no Redis; kubernetes/replicas.yaml and
		// docker-compose.yaml show the shared store (replicas_test.go).
		t.Error("the single-process example keeps revocation.store memory and cache.shared false")
	}
}

// TestExampleConfigWithoutSecrets is the file as a user first runs it:
// only the publishable key set. It must still validate (secret key,
// webhook secret and admin token are optional with a loopback admin).
func TestExampleConfigWithoutSecrets(t *testing.T) {
	t.Parallel()
	_, err := config.Load(config.Sources{
		File: "sessiongate.yaml",
		Env:  envOf(map[string]string{"CLERK_PUBLISHABLE_KEY": fakePublishableKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExampleConfigUsesEveryKey keeps deploy/sessiongate.yaml complete: a
// key added to config.Config must be shown in the example.
func TestExampleConfigUsesEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("sessiongate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	yamlKeys(doc.Content[0], "", inFile)
	want := map[string]bool{}
	structKeys(reflect.TypeOf(config.Config{}), "", want)
	var missing []string
	for k := range want {
		if !inFile[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("deploy/sessiongate.yaml does not show: %s", strings.Join(missing, ", "))
	}
}

// structKeys collects the yaml key paths of t ("clerk.secret_key",
// "routes[].require.roles").
func structKeys(t reflect.Type, prefix string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		out[path] = true
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			structKeys(ft, path+".", out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			structKeys(ft.Elem(), path+"[].", out)
		}
	}
}

// yamlKeys collects the key paths present in a YAML mapping, with the same
// notation as structKeys (the keys of every element of a sequence).
func yamlKeys(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := prefix + n.Content[i].Value
			out[path] = true
			v := n.Content[i+1]
			switch v.Kind {
			case yaml.MappingNode:
				yamlKeys(v, path+".", out)
			case yaml.SequenceNode:
				for _, e := range v.Content {
					yamlKeys(e, path+"[].", out)
				}
			}
		}
	}
}

// k8sObject is the part of a Kubernetes object the test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type container struct {
	Name  string `yaml:"name"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
}

type probe struct {
	HTTPGet struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

// port resolves a probe's port (number or container port name).
func (c *container) port(n yaml.Node) int {
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort
		}
	}
	var v int
	_ = n.Decode(&v)
	return v
}

func TestKubernetesSidecar(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("kubernetes/sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false)
	objs := map[string]k8sObject{}
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubernetes/sidecar.yaml: %v", err)
		}
		if o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("a document without kind or metadata.name: %+v", o)
		}
		objs[o.Kind] = o
	}
	for _, k := range []string{"Deployment", "Service"} {
		if _, ok := objs[k]; !ok {
			t.Fatalf("no %s", k)
		}
	}
	dep := objs["Deployment"]
	var sg *container
	for i := range dep.Spec.Template.Spec.Containers {
		if c := &dep.Spec.Template.Spec.Containers[i]; c.Name == "sessiongate" {
			sg = c
		}
	}
	if sg == nil {
		t.Fatal("no sessiongate container")
	}
	for _, tc := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", sg.LivenessProbe, "/healthz"}, {"readinessProbe", sg.ReadinessProbe, "/readyz"}} {
		if tc.p == nil {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if tc.p.HTTPGet.Path != tc.path || sg.port(tc.p.HTTPGet.Port) != 9090 {
			t.Errorf("%s: GET %s on %d, want %s on 9090", tc.name, tc.p.HTTPGet.Path, sg.port(tc.p.HTTPGet.Port), tc.path)
		}
	}
	if got := objs["Service"].Spec.Ports; len(got) != 1 || sg.port(yaml.Node{Kind: yaml.ScalarNode, Value: got[0].TargetPort}) != 8080 {
		t.Errorf("Service targets %+v, want sessiongate's 8080 only", got)
	}
	if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g <= 30 {
		t.Errorf("terminationGracePeriodSeconds %d must exceed server.shutdown_timeout (30s)", g)
	}

	// The container's environment, with the Secret's values faked, must be a
	// configuration the binary accepts (notably: a non-loopback admin
	// listener has its token).
	secretName, secretKeys := kubectlSecret(t, data)
	fake := map[string]string{
		"CLERK_SECRET_KEY":        fakeSecretKey,
		"CLERK_PUBLISHABLE_KEY":   fakePublishableKey,
		"SESSIONGATE_ADMIN_TOKEN": fakeAdminToken,
	}
	env := map[string]string{}
	for _, e := range sg.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != secretName {
			t.Errorf("%s from Secret %q, want %q (the one the header's kubectl command creates)", e.Name, ref.Name, secretName)
		}
		if !secretKeys[ref.Key] {
			t.Errorf("%s: the header's kubectl command does not create key %s", e.Name, ref.Key)
		}
		v, ok := fake[ref.Key]
		if !ok {
			t.Fatalf("no fake value for Secret key %s", ref.Key)
		}
		env[e.Name] = v
	}
	if env["SESSIONGATE_UPSTREAM"] != "http://127.0.0.1:3000" {
		t.Errorf("SESSIONGATE_UPSTREAM %q", env["SESSIONGATE_UPSTREAM"])
	}
	cfg, err := config.Load(config.Sources{Env: envOf(env)})
	if err != nil {
		t.Fatalf("the sidecar's environment is not a valid configuration:\n%v", err)
	}
	if cfg.AdminListen != "0.0.0.0:9090" {
		t.Errorf("admin_listen %q, want 0.0.0.0:9090 (probes come over the pod IP)", cfg.AdminListen)
	}
	delete(env, "SESSIONGATE_ADMIN_TOKEN")
	if _, err := config.Load(config.Sources{Env: envOf(env)}); err == nil {
		t.Error("without SESSIONGATE_ADMIN_TOKEN the sidecar's configuration still validates")
	}
}

// TestKubernetesManifestsHoldNoSecret: a manifest users `kubectl apply -f`
// must not carry a Secret with placeholder values, which would overwrite the
// real one on every apply. Each manifest's header has the `kubectl create
// secret` command instead.
func TestKubernetesManifestsHoldNoSecret(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "Secret" {
				t.Errorf("%s ships Secret %q: kubectl apply would overwrite the real one", f, o.Metadata.Name)
			}
		}
		if bytes.Contains(data, []byte("secretKeyRef")) || bytes.Contains(data, []byte("secretRef")) {
			if name, keys := kubectlSecret(t, data); name == "" || len(keys) == 0 {
				t.Errorf("%s uses a Secret but its header has no kubectl create secret command", f)
			}
		}
	}
}

var (
	kubectlCreateSecret = regexp.MustCompile(`(?m)^#\s+kubectl create secret generic ([a-z0-9-]+)`)
	kubectlLiteral      = regexp.MustCompile(`(?m)^#\s+--from-literal=([A-Z0-9_]+)=`)
)

// kubectlSecret reads the `kubectl create secret generic NAME
// --from-literal=KEY=…` command of a manifest's header comment: the Secret
// the manifest expects to exist.
func kubectlSecret(t *testing.T, data []byte) (string, map[string]bool) {
	t.Helper()
	m := kubectlCreateSecret.FindSubmatch(data)
	if m == nil {
		return "", nil
	}
	keys := map[string]bool{}
	for _, k := range kubectlLiteral.FindAllSubmatch(data, -1) {
		keys[string(k[1])] = true
	}
	return string(m[1]), keys
}

// TestForwardAuthRecipesListEveryIdentityHeader keeps the nginx, Traefik
// and Caddy recipes in step with the headers the proxy sets.
func TestForwardAuthRecipesListEveryIdentityHeader(t *testing.T) {
	t.Parallel()
	var traefik struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth struct {
					Address             string   `yaml:"address"`
					AuthResponseHeaders []string `yaml:"authResponseHeaders"`
					AuthRequestHeaders  []string `yaml:"authRequestHeaders"`
					TrustForwardHeader  bool     `yaml:"trustForwardHeader"`
				} `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	data, err := os.ReadFile("traefik/forward-auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &traefik); err != nil {
		t.Fatalf("traefik/forward-auth.yaml: %v", err)
	}
	fa := traefik.HTTP.Middlewares["sessiongate"].ForwardAuth
	if !strings.HasSuffix(fa.Address, proxy.ForwardAuthPath) {
		t.Errorf("traefik address %q does not end in %s", fa.Address, proxy.ForwardAuthPath)
	}
	if want := proxy.IdentityHeaders(""); !reflect.DeepEqual(fa.AuthResponseHeaders, want) {
		t.Errorf("traefik authResponseHeaders %v, want %v", fa.AuthResponseHeaders, want)
	}

	// Traefik sets X-Forwarded-Method/Proto/Host/Uri itself (the real
	// nginx and Caddy recipes are run by proxy/*_test.go; Traefik is not
	// packaged for Debian, so its recipe is checked here): it must pass
	// sessiongate only the credentials, never a client's forwarding
	// headers, and must not trust the client's X-Forwarded-*.
	if fa.TrustForwardHeader {
		t.Error("traefik trustForwardHeader: true lets a client choose X-Forwarded-Uri")
	}
	if len(fa.AuthRequestHeaders) == 0 {
		t.Error("traefik authRequestHeaders is empty: every client header, X-Original-URI included, reaches sessiongate")
	}
	for _, h := range fa.AuthRequestHeaders {
		if l := strings.ToLower(h); strings.HasPrefix(l, "x-forwarded-") || strings.HasPrefix(l, "x-original-") {
			t.Errorf("traefik authRequestHeaders passes the client's %s", h)
		}
	}
	for _, want := range []string{"Authorization", "Cookie"} {
		if !slices.Contains(fa.AuthRequestHeaders, want) {
			t.Errorf("traefik authRequestHeaders lacks %s", want)
		}
	}

	caddy, err := os.ReadFile("caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := os.ReadFile("nginx/sessiongate.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(caddy, []byte("rewrite "+proxy.ForwardAuthPath+"\n")) {
		t.Errorf("Caddyfile: no rewrite %s", proxy.ForwardAuthPath)
	}
	// Every forwarding header the nginx recipe's auth subrequest sends is
	// set or cleared there, never the client's.
	for _, h := range []string{"X-Forwarded-Uri $request_uri", "X-Forwarded-Method $request_method",
		"X-Forwarded-Host $host", "X-Forwarded-Proto $scheme", `X-Original-URI ""`, `X-Original-Method ""`} {
		if !bytes.Contains(nginx, []byte("proxy_set_header "+h+";")) {
			t.Errorf("nginx: the auth subrequest does not set proxy_set_header %s", h)
		}
	}
	if !bytes.Contains(nginx, []byte(proxy.ForwardAuthPath+";")) {
		t.Errorf("nginx: no proxy_pass to %s", proxy.ForwardAuthPath)
	}
	for _, h := range proxy.IdentityHeaders("") {
		if !bytes.Contains(caddy, []byte(" "+h+" {rp.header."+h+"}\n")) {
			t.Errorf("Caddyfile does not copy %s from sessiongate's answer", h)
		}
		v := "$upstream_http_" + strings.ReplaceAll(strings.ToLower(h), "-", "_")
		if !bytes.Contains(nginx, []byte(v+";")) {
			t.Errorf("nginx: no auth_request_set from %s", v)
		}
		if !bytes.Contains(nginx, []byte("proxy_set_header "+h+" ")) {
			t.Errorf("nginx: no proxy_set_header %s", h)
		}
	}
}
