package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/metrics"
	"github.com/sessiongate/sessiongate/proxy"
)

// front is what a configuration reload replaces: the proxy built from the
// running configuration. Requests load it once, when they start, so a
// request in flight finishes with the proxy it started with.
type front struct {
	cfg   *config.Config
	proxy *proxy.Proxy
}

func (a *App) serveFront(w http.ResponseWriter, r *http.Request) {
	a.front.Load().proxy.ServeHTTP(w, r)
}

// reloadableKeys are the configuration keys (and everything below them) a
// reload applies: exactly what buildProxy reads, and connections, which
// applyConnections (conns.go) hands to the shared connection registry. A
// change of any other key is refused with ErrRestartNeeded: the listeners
// and their TLS files' paths, the Clerk instance, keys and caches, the deny
// list and Redis, the admin listener's credentials, the server timeouts and
// the log level are built once, at start. A key added to Config is
// therefore restart-only until it is listed here, never silently ignored by
// a reload.
var reloadableKeys = []string{"upstream", "routes", "headers", "sign_in_url", "trusted_proxies", "log.access",
	"connections"}

// ErrRestartNeeded is returned by Reload when the new configuration changes
// a key that only a restart applies.
var ErrRestartNeeded = errors.New("a restart is needed")

// RestartNeededError lists the keys of a refused reload that only a restart
// applies. It wraps ErrRestartNeeded.
type RestartNeededError struct {
	Keys []string
}

func (e *RestartNeededError) Error() string {
	return fmt.Sprintf("config reload: %s changed: a restart is needed to apply %s; the running configuration stays",
		strings.Join(e.Keys, ", "), plural(len(e.Keys), "it", "them"))
}

func (e *RestartNeededError) Unwrap() error { return ErrRestartNeeded }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// reloader is the App's reload state.
type reloader struct {
	load     func() (*config.Config, error) // Options.Reload
	file     string                         // Options.ConfigFile
	interval time.Duration

	mu  sync.Mutex // guards following; held for a whole reload, so reloads never overlap
	sum [sha256.Size]byte
}

// fileSum hashes the configuration file's content.
func fileSum(name string) ([sha256.Size]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(data), nil
}

// Reload re-reads the configuration (Options.Reload) and applies it for new
// requests: routes, policies, headers, upstreams, sign_in_url,
// trusted_proxies, log.access and connections (reloadableKeys; a new
// connections.max_lifetime bounds the connections opened after the reload,
// a new recheck_interval applies from the next re-check); it also re-reads the TLS
// certificate files if they changed. Requests in flight
// finish with the configuration they started with. A configuration that
// does not load or validate, or that changes a key only a restart applies
// (a *RestartNeededError), is refused: the running configuration stays, and
// the refusal is logged with the keys and problems and counted in
// sessiongate_config_reloads_total. trigger names the cause in the log
// ("SIGHUP", "watch_config").
func (a *App) Reload(trigger string) error {
	r := &a.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	log := a.log.With(zap.String("trigger", trigger))
	a.certs.Recheck() // the TLS files' paths cannot change, their content can
	if r.file != "" {
		// Whatever the outcome, this content has been tried: watch_config
		// waits for the next change rather than retrying it every poll.
		r.sum, _ = fileSum(r.file)
	}
	if r.load == nil {
		err := errors.New("config reload: this process has no configuration source to re-read")
		a.refuse(log, metrics.ReloadInvalid, err)
		return err
	}
	cfg, err := r.load()
	if err == nil {
		err = unsupported(cfg)
	}
	if err != nil {
		a.refuse(log, metrics.ReloadInvalid, err)
		return err
	}
	cur := a.front.Load().cfg
	var restart []string
	var changed []string
	for _, k := range diffKeys(cur, cfg) {
		if reloadable(k) {
			changed = append(changed, k)
		} else {
			restart = append(restart, k)
		}
	}
	if len(restart) > 0 {
		err := &RestartNeededError{Keys: restart}
		a.refuse(log, metrics.ReloadRestartNeeded, err, zap.Strings("keys", restart))
		return err
	}
	p, err := a.buildProxy(cfg)
	if err != nil {
		a.refuse(log, metrics.ReloadInvalid, err)
		return err
	}
	a.front.Store(&front{cfg: cfg, proxy: p})
	a.applyConnections(cfg) // conns.go
	a.metrics.ObserveReload(metrics.ReloadOK)
	log.Info("config reloaded: new requests use it", zap.Strings("changed", changed), zap.Int("routes", len(cfg.Routes)))
	return nil
}

// refuse logs and counts a refused reload. A validation error is logged
// with the first key at fault and every problem.
func (a *App) refuse(log *zap.Logger, result string, err error, fields ...zap.Field) {
	a.metrics.ObserveReload(result)
	fields = append(fields, zap.String("result", result))
	var ve *config.ValidationError
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		problems := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			problems[i] = p.Key + ": " + p.Msg
		}
		fields = append(fields, zap.String("key", ve.Problems[0].Key), zap.Strings("problems", problems))
	} else {
		fields = append(fields, zap.Error(err))
	}
	log.Error("config reload refused: the running configuration stays", fields...)
}

func reloadable(key string) bool {
	for _, k := range reloadableKeys {
		if key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

// diffKeys lists the key paths ("listen", "tls.cert_file", "routes[1].auth",
// "routes") whose values differ between a and b. It names keys, never
// values: secrets compare like any other value and stay unprinted.
func diffKeys(a, b *config.Config) []string {
	var out []string
	diffValue(reflect.ValueOf(*a), reflect.ValueOf(*b), "", &out)
	return out
}

func diffValue(a, b reflect.Value, path string, out *[]string) {
	switch a.Kind() {
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			*out = append(*out, path)
		default:
			diffValue(a.Elem(), b.Elem(), path, out)
		}
	case reflect.Struct:
		t := a.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				if !reflect.DeepEqual(a.Interface(), b.Interface()) {
					*out = append(*out, path) // a leaf type with hidden state
				}
				return
			}
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			diffValue(a.Field(i), b.Field(i), p, out)
		}
	case reflect.Map:
		if (a.Len() != 0 || b.Len() != 0) && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path) // nil and empty are one thing in YAML
		}
	case reflect.Slice:
		if a.Len() != b.Len() {
			*out = append(*out, path)
			return
		}
		for i := 0; i < a.Len(); i++ {
			diffValue(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, path)
		}
	}
}

// watchConfig polls the configuration file every interval when
// watch_config is on, and reloads when its content changes. The channel is
// closed when it has stopped (ctx done).
func (a *App) watchConfig(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	r := &a.reload
	if !a.cfg.WatchConfig {
		close(done)
		return done
	}
	if r.file == "" {
		a.log.Warn("watch_config: no configuration file to watch (the configuration came from the environment and flags)")
		close(done)
		return done
	}
	a.log.Info("watch_config: reloading when the file changes", zap.String("file", r.file), zap.Duration("every", r.interval))
	go func() {
		defer close(done)
		t := time.NewTicker(r.interval)
		defer t.Stop()
		var readErr string // the last read error logged, to log each once
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sum, err := fileSum(r.file)
			if err != nil {
				if err.Error() != readErr {
					readErr = err.Error()
					a.log.Warn("watch_config: the configuration file cannot be read; the running configuration stays", zap.Error(err))
				}
				continue
			}
			readErr = ""
			r.mu.Lock()
			same := sum == r.sum
			r.mu.Unlock()
			if !same {
				_ = a.Reload("watch_config")
			}
		}
	}()
	return done
}

// initWatch records the content of the file the running configuration was
// read from, so that watch_config reloads only on a change.
func (r *reloader) initWatch() {
	if r.file != "" {
		r.sum, _ = fileSum(r.file)
	}
}
