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
	Listen, Upstream, AdminListen string
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
	{"SESSIONGATE_UPSTREAM", func(c *Config, v string) { c.Upstream = v }},
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
	expandNode(&doc, env, &errs)
	checkKeys(&doc, reflect.TypeOf(Config{}), "", &errs)
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
func expandNode(n *yaml.Node, env func(string) (string, bool), errs *[]string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandNode(c, env, errs)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandNode(n.Content[i], env, errs)
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

var (
	secretType      = reflect.TypeOf(Secret(""))
	durationType    = reflect.TypeOf(Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// checkKeys refuses unknown keys (yaml.v3's KnownFields, which Node.Decode
// lacks) and malformed durations, naming the line and the key path.
func checkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]string) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, errs)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			if _, err := ParseDuration(n.Value); err != nil {
				*errs = append(*errs, fmt.Sprintf("line %d: %s: %v", n.Line, path, err))
			}
		}
		return
	}
	if t == secretType {
		// yaml.v3 quotes the value in its type errors ("cannot decode !!str
		// `sk_live_…` as a !!int"): refuse anything but a string before it
		// gets the chance, without showing the value.
		v := n
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode || (v.Style&yaml.TaggedStyle != 0 && v.ShortTag() != "!!str" && v.ShortTag() != "!!null") {
			*errs = append(*errs, fmt.Sprintf("line %d: %s: a secret must be a plain string (value not shown)", n.Line, path))
		}
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value == "<<" {
				continue // merge key: yaml.v3 resolves it
			}
			kp := joinPath(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Sprintf("line %d: %s: unknown key", k.Line, kp))
				continue
			}
			checkKeys(n.Content[i+1], ft, kp, errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
