package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// kustomizations are the shipped kustomize directories.
var kustomizations = []string{"kubernetes", "prometheus/kubernetes"}

// notInBase are manifests of deploy/kubernetes deliberately left out of its
// kustomization, with the reason.
var notInBase = map[string]string{
	"kubernetes/sidecar.yaml": "an example to merge into the app's own Deployment",
}

// knownKinds are the kinds the manifests may hold, with their apiVersion.
var knownKinds = map[string]string{
	"ConfigMap":           "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
	"NetworkPolicy":       "networking.k8s.io/v1",
	"PodMonitor":          "monitoring.coreos.com/v1",
}

// manifest is the part of a Kubernetes object the schema test reads.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Selector yaml.Node `yaml:"selector"` // Service: a map; others: {matchLabels}
		Ports    []struct {
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []struct {
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					EnvFrom []struct {
						SecretRef *struct {
							Name string `yaml:"name"`
						} `yaml:"secretRef"`
					} `yaml:"envFrom"`
					Env []struct {
						ValueFrom *struct {
							SecretKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
				Volumes []struct {
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		PodMetricsEndpoints []struct {
			Port          string `yaml:"port"`
			Path          string `yaml:"path"`
			Authorization *struct {
				Type        string `yaml:"type"`
				Credentials struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"credentials"`
			} `yaml:"authorization"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

func (m manifest) id() string { return m.Kind + "/" + m.Metadata.Name }

// selectorLabels reads a Service selector ({k: v}) or a label selector
// ({matchLabels: {k: v}}).
func (m manifest) selectorLabels(t *testing.T) map[string]string {
	t.Helper()
	var sel struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if m.Kind == "Service" {
		var out map[string]string
		if err := m.Spec.Selector.Decode(&out); err != nil {
			t.Fatalf("%s: selector: %v", m.id(), err)
		}
		return out
	}
	if err := m.Spec.Selector.Decode(&sel); err != nil {
		t.Fatalf("%s: selector: %v", m.id(), err)
	}
	return sel.MatchLabels
}

// build is what the schema test renders of a kustomization: its objects
// and the files they came from.
type build struct {
	objects []manifest
	files   []string
}

// renderKustomization reads dir/kustomization.yaml the way kustomize does
// for the features the shipped ones use (resources: files and directories),
// and refuses what they must not use.
func renderKustomization(t *testing.T, dir string, seen map[string]bool) build {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if seen[abs] {
		t.Fatalf("%s: a kustomization cycle", dir)
	}
	seen[abs] = true
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k["apiVersion"] != "kustomize.config.k8s.io/v1beta1" || k["kind"] != "Kustomization" {
		t.Errorf("%s/kustomization.yaml: apiVersion %v, kind %v", dir, k["apiVersion"], k["kind"])
	}
	for key := range k {
		switch key {
		case "apiVersion", "kind", "resources":
		case "secretGenerator":
			t.Errorf("%s/kustomization.yaml generates a Secret: kubectl apply would own it and overwrite the real one", dir)
		default:
			t.Errorf("%s/kustomization.yaml: %s is not checked by this test; add it here first", dir, key)
		}
	}
	var b build
	resources, _ := k["resources"].([]any)
	if len(resources) == 0 {
		t.Fatalf("%s/kustomization.yaml lists no resources", dir)
	}
	for _, r := range resources {
		rel, _ := r.(string)
		p := filepath.Join(dir, rel)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s/kustomization.yaml lists %s, which does not exist", dir, rel)
			continue
		}
		if st.IsDir() {
			sub := renderKustomization(t, p, seen)
			b.objects = append(b.objects, sub.objects...)
			b.files = append(b.files, sub.files...)
			continue
		}
		if strings.Contains(rel, "..") || strings.Contains(rel, "/") {
			// kustomize refuses files outside the kustomization's root.
			t.Errorf("%s/kustomization.yaml lists the file %s outside its directory", dir, rel)
		}
		b.files = append(b.files, filepath.Clean(p))
		f, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(f))
		for {
			var m manifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			b.objects = append(b.objects, m)
		}
	}
	return b
}

// TestKustomizeBase checks the kustomize directories without a cluster:
// every listed resource exists and parses, kinds and apiVersions are the
// expected ones, no Secret ships, every reference resolves (ConfigMaps,
// Service and PodMonitor selectors and ports, the Secret keys that the
// manifests' kubectl create secret commands create), and every manifest of
// deploy/kubernetes is in the base unless it says why not. With a kubectl
// whose kustomize understands today's format (v3 or newer), `kubectl
// kustomize` must render the same objects.
func TestKustomizeBase(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			b := renderKustomization(t, dir, map[string]bool{})
			checkObjects(t, dir, b)
			kubectlKustomize(t, dir, b)
		})
	}

	// Every manifest of the base directory is in it, or says why not.
	b := renderKustomization(t, "kubernetes", map[string]bool{})
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" || slices.Contains(b.files, f) {
			continue
		}
		if _, ok := notInBase[f]; !ok {
			t.Errorf("%s is neither in kubernetes/kustomization.yaml nor listed in notInBase with a reason", f)
		}
	}
}

func checkObjects(t *testing.T, dir string, b build) {
	t.Helper()
	byID := map[string]manifest{}
	// The Secret keys the files' headers create, by Secret name.
	secretKeys := map[string]map[string]bool{}
	for _, f := range b.files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if name, keys := kubectlSecret(t, data); name != "" {
			if secretKeys[name] == nil {
				secretKeys[name] = map[string]bool{}
			}
			for k := range keys {
				secretKeys[name][k] = true
			}
		}
	}
	needSecret := func(what, name, key string) {
		keys, ok := secretKeys[name]
		if !ok {
			t.Errorf("%s: %s reads Secret %q, which no header's kubectl create secret command creates", dir, what, name)
		} else if key != "" && !keys[key] {
			t.Errorf("%s: %s reads key %s of Secret %q, which the kubectl create secret command does not create", dir, what, key, name)
		}
	}
	for _, m := range b.objects {
		if m.Kind == "Secret" {
			t.Errorf("%s ships Secret %q", dir, m.Metadata.Name)
			continue
		}
		want, ok := knownKinds[m.Kind]
		if !ok {
			t.Errorf("%s: unexpected kind %q", dir, m.Kind)
		} else if m.APIVersion != want {
			t.Errorf("%s: apiVersion %q, want %q", m.id(), m.APIVersion, want)
		}
		if m.Metadata.Name == "" {
			t.Errorf("%s: a %s without a name", dir, m.Kind)
		}
		if _, dup := byID[m.id()]; dup {
			t.Errorf("%s: %s twice", dir, m.id())
		}
		byID[m.id()] = m
	}
	matches := func(sel, labels map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	// podsOf returns the Deployments whose pods sel selects.
	podsOf := func(sel map[string]string) []manifest {
		var out []manifest
		for _, m := range b.objects {
			if m.Kind == "Deployment" && matches(sel, m.Spec.Template.Metadata.Labels) {
				out = append(out, m)
			}
		}
		return out
	}
	hasPort := func(deps []manifest, port string) bool {
		for _, d := range deps {
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, p := range c.Ports {
					if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
						return true
					}
				}
			}
		}
		return false
	}
	for _, m := range b.objects {
		switch m.Kind {
		case "Deployment":
			if !matches(m.selectorLabels(t), m.Spec.Template.Metadata.Labels) {
				t.Errorf("%s: its selector does not select its own pods", m.id())
			}
			for _, v := range m.Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					if _, ok := byID["ConfigMap/"+v.ConfigMap.Name]; !ok {
						t.Errorf("%s mounts ConfigMap %q, which the build does not hold", m.id(), v.ConfigMap.Name)
					}
				}
			}
			for _, c := range m.Spec.Template.Spec.Containers {
				for _, e := range c.EnvFrom {
					if e.SecretRef != nil {
						needSecret(m.id(), e.SecretRef.Name, "")
					}
				}
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						needSecret(m.id(), e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
					}
				}
			}
		case "Service", "PodDisruptionBudget":
			deps := podsOf(m.selectorLabels(t))
			if len(deps) == 0 {
				t.Errorf("%s selects no pod of the build", m.id())
			}
			for _, p := range m.Spec.Ports {
				if p.TargetPort.Value != "" && !hasPort(deps, p.TargetPort.Value) {
					t.Errorf("%s targets port %s, which its pods do not have", m.id(), p.TargetPort.Value)
				}
			}
		case "PodMonitor":
			deps := podsOf(m.selectorLabels(t))
			if len(deps) == 0 {
				t.Errorf("%s selects no pod of the build", m.id())
			}
			if len(m.Spec.PodMetricsEndpoints) == 0 {
				t.Errorf("%s has no endpoint", m.id())
			}
			for _, e := range m.Spec.PodMetricsEndpoints {
				if !hasPort(deps, e.Port) || e.Path != "/metrics" {
					t.Errorf("%s scrapes port %q path %q, want the pods' admin port and /metrics", m.id(), e.Port, e.Path)
				}
				if e.Authorization == nil || e.Authorization.Type != "Bearer" {
					t.Errorf("%s: no bearer authorization: /metrics needs the metrics token", m.id())
					continue
				}
				c := e.Authorization.Credentials
				if c.Key != "SESSIONGATE_METRICS_TOKEN" {
					t.Errorf("%s scrapes with key %q, want SESSIONGATE_METRICS_TOKEN (the metrics token, which cannot revoke)", m.id(), c.Key)
				}
				needSecret(m.id(), c.Name, c.Key)
			}
		}
	}
}

var kustomizeVersion = regexp.MustCompile(`Kustomize Version: v(\d+)\.`)

// kubectlKustomize renders dir with `kubectl kustomize` and compares the
// objects with the schema test's. Debian's kubernetes-client (1.20) embeds
// kustomize v2.0.3, which predates directories in resources: such a
// kubectl, or none, leaves the schema test alone.
func kubectlKustomize(t *testing.T, dir string, b build) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl not installed: schema test only")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, kubectl, "version", "--client").CombinedOutput()
	v := 0
	if m := kustomizeVersion.FindSubmatch(out); m != nil {
		v, _ = strconv.Atoi(string(m[1]))
	}
	if v < 3 {
		t.Logf("kubectl's kustomize is older than v3 (%q): schema test only", strings.TrimSpace(string(out)))
		return
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	cmd.Stderr = &stderr
	rendered, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	var got, want []string
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	for {
		var o manifest
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubectl kustomize %s output: %v", dir, err)
		}
		got = append(got, o.id())
	}
	for _, o := range b.objects {
		want = append(want, o.id())
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("kubectl kustomize %s renders %v; the schema test read %v", dir, got, want)
	}
}
