package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sources are where Load reads configuration from, lowest precedence first:
// defaults, File, Env, Flags.
type Sources struct {
	// File is the YAML file. Empty: SESSIONGATE_CONFIG, else no file.
	File string
	// Env looks up an environment variable. Nil means os.LookupEnv.
	Env func(string) (string, bool)
	// Flags are the command-line overrides.
	Flags Overrides
}

// Overrides are the values set by command-line flags; an empty field was not
// set.
type Overrides struct {
	// Listen, Upstream and AdminListen are --listen, --upstream and
	// --admin-listen (listen, upstream, admin_listen).
	Listen, Upstream, AdminListen string
	// LogLevel is --log-level (log.level).
	LogLevel string
}

// envVars maps each environment variable to the setter of its key.
var envVars = []struct {
	name string
	set  func(c *Config, v string)
}{
	{"CLERK_SECRET_KEY", func(c *Config, v string) { c.Clerk.SecretKey = Secret(v) }},
	{"CLERK_PUBLISHABLE_KEY", func(c *Config, v string) { c.Clerk.PublishableKey = v }},
	{"CLERK_JWT_KEY", func(c *Config, v string) { c.Clerk.JWTKey = v }},
	{"CLERK_API_URL", func(c *Config, v string) { c.Clerk.APIURL = v }},
	{"CLERK_WEBHOOK_SIGNING_SECRET", func(c *Config, v string) { c.Clerk.WebhookSecret = Secret(v) }},
	{"SESSIONGATE_CONFIG", nil}, // the file path, read by Load
	{"SESSIONGATE_LISTEN", func(c *Config, v string) { c.Listen = v }},
	{"SESSIONGATE_ADMIN_LISTEN", func(c *Config, v string) { c.AdminListen = v }},
	{"SESSIONGATE_ADMIN_TOKEN", func(c *Config, v string) { c.AdminToken = Secret(v) }},
	{"CLERK_MACHINE_SECRET_KEY", func(c *Config, v string) { c.Clerk.MachineSecretKey = Secret(v) }},
	{"SESSIONGATE_METRICS_TOKEN", func(c *Config, v string) { c.MetricsToken = Secret(v) }},
	{"SESSIONGATE_UPSTREAM", func(c *Config, v string) { c.Upstream = v }},
	{"SESSIONGATE_TLS_CERT_FILE", func(c *Config, v string) { c.TLS.CertFile = v }},
	{"SESSIONGATE_TLS_KEY_FILE", func(c *Config, v string) { c.TLS.KeyFile = v }},
	{"SESSIONGATE_TLS_CLIENT_CA_FILE", func(c *Config, v string) { c.TLS.ClientCAFile = v }},
	{"SESSIONGATE_ISSUER", func(c *Config, v string) { c.Clerk.Issuer = v }},
	{"SESSIONGATE_AUTHORIZED_PARTIES", func(c *Config, v string) { c.Clerk.AuthorizedParties = splitList(v) }},
	{"SESSIONGATE_JWKS_URL", func(c *Config, v string) { c.Clerk.JWKSURL = v }},
	{"SESSIONGATE_SIGN_IN_URL", func(c *Config, v string) { c.SignInURL = v }},
	{"SESSIONGATE_PUBLIC_ORIGIN", func(c *Config, v string) { c.PublicOrigin = v }},
	{"SESSIONGATE_TRUSTED_PROXIES", func(c *Config, v string) { c.TrustedProxies = splitList(v) }},
	{"SESSIONGATE_LOG_LEVEL", func(c *Config, v string) { c.Log.Level = v }},
}

// EnvVars lists the environment variables Load reads (besides those a
// config file names in ${VAR}).
func EnvVars() []string {
	out := make([]string, len(envVars))
	for i, e := range envVars {
		out[i] = e.name
	}
	return out
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty entries.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Load builds the configuration: Defaults, then the YAML file (Sources.File,
// else SESSIONGATE_CONFIG, else none), then the environment, then the flags;
// then it normalizes (Normalize) and validates (Validate) the result.
//
// An environment variable that is set but empty does not override: an
// exported-but-blank CLERK_SECRET_KEY leaves the file's value alone.
//
// In the file, ${VAR} and ${VAR:-default} in a value expand from the
// environment and $$ is a literal $ (see ExpandEnv). Expansion happens in
// values after parsing, so an environment value never changes the file's
// structure. An unset variable expands to ""; a plain (unquoted) value that
// expands to nothing is YAML null and leaves the key's default, while a
// quoted "${VAR}" sets the empty string. An expanded value is typed by its
// content, quoted or not ("${TOKENS}" may fill an int). An unknown key, a second
// YAML document or a malformed value is an error naming the line and key; an
// empty file is a file that sets nothing.
func Load(src Sources) (*Config, error) {
	env := src.Env
	if env == nil {
		env = os.LookupEnv
	}
	lookup := func(name string) (string, bool) {
		v, ok := env(name)
		if !ok || v == "" {
			return "", false
		}
		return v, true
	}

	cfg := Defaults()
	file := src.File
	if file == "" {
		file, _ = lookup("SESSIONGATE_CONFIG")
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, env, &cfg); err != nil {
			return nil, fmt.Errorf("config: %s: %w", file, err)
		}
	}
	for _, e := range envVars {
		if v, ok := lookup(e.name); ok && e.set != nil {
			e.set(&cfg, v)
		}
	}
	if f := src.Flags; f.Listen != "" {
		cfg.Listen = f.Listen
	}
	if f := src.Flags; f.AdminListen != "" {
		cfg.AdminListen = f.AdminListen
	}
	if f := src.Flags; f.Upstream != "" {
		cfg.Upstream = f.Upstream
	}
	if f := src.Flags; f.LogLevel != "" {
		cfg.Log.Level = f.LogLevel
	}
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func decodeYAML(data []byte, env func(string) (string, bool), cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return err
	default:
		return fmt.Errorf("line %d: a second YAML document: the file must hold exactly one", extra.Line)
	}
	var errs []string
	expanded := map[*yaml.Node]bool{}
	expandNode(&doc, env, expanded, &errs)
	checkNode(&doc, reflect.TypeOf(Config{}), "", expanded, &errs)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 && doc.Content[0].ShortTag() == "!!null" {
		return nil // only comments, or an explicit null
	}
	return doc.Decode(cfg)
}

// expandNode expands ${VAR} in every scalar value, after parsing, so that an
// environment value can never change the document's structure (a multi-line
// PEM in CLERK_JWT_KEY stays one string; "x\nadmin_listen: …" stays a value).
//
// Every node whose value changed is marked in expanded: its value came from
// the environment and error messages must not show it.
func expandNode(n *yaml.Node, env func(string) (string, bool), expanded map[*yaml.Node]bool, errs *[]string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandNode(c, env, expanded, errs)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandNode(n.Content[i], env, expanded, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		v, err := ExpandEnv(n.Value, env)
		if err != nil {
			*errs = append(*errs, fmt.Sprintf("line %d: %v", n.Line, err))
			return
		}
		if v == n.Value {
			return // only literal $ signs
		}
		n.Value = v
		expanded[n] = true
		if n.Tag != "!!str" {
			return // an explicit tag (!!str, !!int…) the author wrote
		}
		// Type the expanded value by its content, whether or not the
		// reference was quoted (quotes are often needed for YAML syntax,
		// as in a flow mapping): "${TOKENS}" with TOKENS=100 is an int.
		// Strings fields take any scalar. A plain reference expanding to
		// nothing is null (the key keeps its default); a quoted one is "".
		quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
		probe := yaml.Node{Kind: yaml.ScalarNode, Value: v}
		if quoted && probe.ShortTag() == "!!null" {
			return
		}
		n.Tag = ""
		n.Style &^= yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
	}
}

// ExpandEnv expands ${VAR} and ${VAR:-default} in s from env; $$ is a
// literal $ and any other $ is kept as is. An unset ${VAR} expands to the
// empty string; ${VAR:-default} takes default when VAR is unset or empty
// (as in the shell). A malformed ${…} is an error naming it.
func ExpandEnv(s string, env func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s[i:min(len(s), i+40)])
			}
			expr := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validEnvName(name) {
				return "", fmt.Errorf("invalid variable reference ${%s} (want ${NAME} or ${NAME:-default}; $$ is a literal $)", expr)
			}
			v, ok := env(name)
			if hasDef && (!ok || v == "") {
				v = def
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
