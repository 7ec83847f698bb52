package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sessiongate/sessiongate/config"
)

const fakeRedisPassword = "4f9c2b7e8d1a6053c9e4b2a7f1d8e6c3"

// replicaObject is the part of the objects in kubernetes/replicas.yaml the
// test reads.
type replicaObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
	Spec       struct {
		Replicas    int `yaml:"replicas"`
		PodSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
		Ingress []struct {
			From []struct {
				PodSelector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"podSelector"`
			} `yaml:"from"`
		} `yaml:"ingress"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					container    `yaml:",inline"`
					Args         []string `yaml:"args"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
					EnvFrom []struct {
						SecretRef struct {
							Name string `yaml:"name"`
						} `yaml:"secretRef"`
					} `yaml:"envFrom"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

func TestKubernetesReplicas(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("kubernetes/replicas.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	objs := map[string]replicaObject{} // "Kind/name"
	for {
		var o replicaObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubernetes/replicas.yaml: %v", err)
		}
		if o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("a document without kind or metadata.name: %+v", o)
		}
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}
	for _, k := range []string{"ConfigMap/sessiongate", "Deployment/sessiongate", "Service/sessiongate",
		"PodDisruptionBudget/sessiongate", "Deployment/redis", "Service/redis", "NetworkPolicy/redis"} {
		if _, ok := objs[k]; !ok {
			t.Fatalf("no %s", k)
		}
	}
	dep := objs["Deployment/sessiongate"]
	if dep.Spec.Replicas < 2 {
		t.Errorf("%d replicas: the example is about several", dep.Spec.Replicas)
	}
	if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g <= 30 {
		t.Errorf("terminationGracePeriodSeconds %d must exceed server.shutdown_timeout (30s)", g)
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want sessiongate alone", len(dep.Spec.Template.Spec.Containers))
	}
	sg := dep.Spec.Template.Spec.Containers[0]
	for _, tc := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", sg.LivenessProbe, "/healthz"}, {"readinessProbe", sg.ReadinessProbe, "/readyz"}} {
		if tc.p == nil || tc.p.HTTPGet.Path != tc.path || sg.port(tc.p.HTTPGet.Port) != 9090 {
			t.Errorf("%s: want GET %s on 9090", tc.name, tc.path)
		}
	}
	// The config file the container reads is the ConfigMap's.
	i := slices.Index(sg.Args, "--config")
	if i < 0 || i+1 >= len(sg.Args) {
		t.Fatalf("args %v: no --config", sg.Args)
	}
	cfgPath := sg.Args[i+1]
	var mounted bool
	for _, m := range sg.VolumeMounts {
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "sessiongate" && filepath.Join(m.MountPath, "sessiongate.yaml") == cfgPath {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("%s is not the ConfigMap's sessiongate.yaml", cfgPath)
	}
	if len(sg.EnvFrom) != 1 || sg.EnvFrom[0].SecretRef.Name != "sessiongate" {
		t.Errorf("the environment must come from Secret sessiongate: %+v", sg.EnvFrom)
	}

	// The embedded configuration, with the Secret's keys faked, is valid and
	// shares through the Redis of this file.
	fake := map[string]string{
		"CLERK_SECRET_KEY":             fakeSecretKey,
		"CLERK_PUBLISHABLE_KEY":        fakePublishableKey,
		"CLERK_WEBHOOK_SIGNING_SECRET": fakeWebhookSecret,
		"SESSIONGATE_ADMIN_TOKEN":      fakeAdminToken,
		"SESSIONGATE_METRICS_TOKEN":    fakeMetricsToken,
		"REDIS_PASSWORD":               fakeRedisPassword,
	}
	secretName, secretKeys := kubectlSecret(t, data)
	if secretName != "sessiongate" {
		t.Errorf("the kubectl command creates Secret %q, want sessiongate", secretName)
	}
	for k := range secretKeys {
		if _, ok := fake[k]; !ok {
			t.Fatalf("no fake value for Secret key %s", k)
		}
	}
	for k := range fake {
		if !secretKeys[k] {
			t.Errorf("the kubectl command in the header does not create key %s", k)
		}
	}
	cfg := loadEmbedded(t, objs["ConfigMap/sessiongate"].Data["sessiongate.yaml"], fake)
	if cfg.Revocation.Store != "redis" || !cfg.Cache.Shared {
		t.Errorf("revocation.store %q, cache.shared %v: the example shares both", cfg.Revocation.Store, cfg.Cache.Shared)
	}
	u, err := url.Parse(cfg.Revocation.RedisURL.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); pw != fakeRedisPassword {
		t.Error("redis_url does not carry REDIS_PASSWORD")
	}
	redisSvc := objs["Service/redis"]
	if u.Hostname() != redisSvc.Metadata.Name || len(redisSvc.Spec.Ports) != 1 || u.Port() != "6379" || redisSvc.Spec.Ports[0].Port != 6379 {
		t.Errorf("redis_url %s:%s does not name Service redis on 6379", u.Hostname(), u.Port())
	}
	if cfg.AdminListen != "0.0.0.0:9090" {
		t.Errorf("admin_listen %q: the kubelet probes over the pod IP", cfg.AdminListen)
	}

	// Redis: password from the same Secret, nothing evicted, and reachable
	// from sessiongate pods only.
	rd := objs["Deployment/redis"].Spec.Template.Spec.Containers[0]
	args := strings.Join(rd.Args, " ")
	for _, want := range []string{"--requirepass $(REDIS_PASSWORD)", "--maxmemory-policy noeviction"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis args %q lack %q", args, want)
		}
	}
	var pwFromSecret bool
	for _, e := range rd.Env {
		if e.Name == "REDIS_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == "sessiongate" && e.ValueFrom.SecretKeyRef.Key == "REDIS_PASSWORD" {
			pwFromSecret = true
		}
	}
	if !pwFromSecret {
		t.Error("Redis does not take REDIS_PASSWORD from Secret sessiongate")
	}
	np := objs["NetworkPolicy/redis"]
	redisLabels := objs["Deployment/redis"].Spec.Template.Metadata.Labels
	sgLabels := dep.Spec.Template.Metadata.Labels
	if !subset(np.Spec.PodSelector.MatchLabels, redisLabels) || len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 ||
		!subset(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels, sgLabels) {
		t.Error("the NetworkPolicy must admit sessiongate pods, and only them, to Redis")
	}
}

func subset(sel, labels map[string]string) bool {
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

// loadEmbedded loads a configuration held in a manifest as sessiongate
// would, with env as the environment.
func loadEmbedded(t *testing.T, body string, env map[string]string) *config.Config {
	t.Helper()
	if body == "" {
		t.Fatal("no embedded sessiongate.yaml")
	}
	p := filepath.Join(t.TempDir(), "sessiongate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{File: p, Env: envOf(env)})
	if err != nil {
		t.Fatalf("the embedded configuration does not load:\n%v", err)
	}
	return cfg
}

func TestDockerCompose(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Healthcheck *struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	var gates []string
	for name, s := range compose.Services {
		if strings.HasPrefix(name, "sessiongate-") {
			gates = append(gates, name)
			if s.Image != "sessiongate:dev" {
				t.Errorf("%s: image %q", name, s.Image)
			}
		}
	}
	if len(gates) != 2 {
		t.Fatalf("sessiongate services %v, want two", gates)
	}
	redis, ok := compose.Services["redis"]
	if !ok || redis.Healthcheck == nil {
		t.Fatal("no redis service with a healthcheck")
	}
	seen := map[string]bool{}
	for _, name := range gates {
		s := compose.Services[name]
		if s.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy Redis", name)
		}
		for _, p := range s.Ports {
			if seen[p] {
				t.Errorf("port %s published twice", p)
			}
			seen[p] = true
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %s beyond loopback", name, p)
			}
		}
		// The mounted configuration exists and, with the service's
		// environment (compose's own ${…:?} and ${…:-} filled in), loads.
		if len(s.Volumes) != 1 {
			t.Fatalf("%s: volumes %v", name, s.Volumes)
		}
		parts := strings.Split(s.Volumes[0], ":")
		if len(parts) < 2 || !slices.Contains(s.Command, parts[1]) {
			t.Fatalf("%s: the mounted file %v is not the one --config reads (%v)", name, parts, s.Command)
		}
		body, err := os.ReadFile(parts[0])
		if err != nil {
			t.Fatalf("%s mounts %s: %v", name, parts[0], err)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			switch {
			case strings.HasPrefix(v, "${CLERK_SECRET_KEY"):
				v = fakeSecretKey
			case strings.HasPrefix(v, "${CLERK_PUBLISHABLE_KEY"):
				v = fakePublishableKey
			case strings.HasPrefix(v, "${SESSIONGATE_ADMIN_TOKEN"):
				v = fakeAdminToken
			case strings.HasPrefix(v, "${CLERK_WEBHOOK_SIGNING_SECRET"):
				v = fakeWebhookSecret
			case strings.HasPrefix(v, "${"):
				_, def, ok := strings.Cut(strings.TrimSuffix(v, "}"), ":-")
				if !ok {
					t.Fatalf("%s: no fake value for %s", name, v)
				}
				v = def
			}
			env[k] = v
		}
		cfg := loadEmbedded(t, string(body), env)
		ru, err := url.Parse(cfg.Revocation.RedisURL.Reveal())
		if err != nil || cfg.Revocation.Store != "redis" || ru.Hostname() != "redis" {
			t.Errorf("%s: revocation.store %q, redis_url host %q: want the compose redis service", name, cfg.Revocation.Store, ru.Hostname())
		}
		up, _ := url.Parse(cfg.Upstream)
		if _, ok := compose.Services[up.Hostname()]; !ok {
			t.Errorf("%s: upstream %s is not a compose service", name, cfg.Upstream)
		}
	}
}
