// Package redisurl parses revocation.redis_url into go-redis options. It is
// shared by config validation (a bad URL refuses start-up with the key
// named) and by redisstore (which connects), so that both read a URL the
// same way.
//
// Accepted forms (the query string takes go-redis's own options, such as
// dial_timeout=2s, pool_size=20, client_name=…; an unknown option is an
// error):
//
//	redis://[[user]:password@]host[:6379][/db]            one server
//	rediss://…                                            the same over TLS
//	redis+sentinel://[[user]:password@]sentinel1:26379[,sentinel2:26379…][/db]?master_name=NAME[&password=…]
//	redis+cluster://[[user]:password@]node1:6379[,node2:6379…]
//	rediss+sentinel://…, rediss+cluster://…               TLS
//
// For Sentinel the user info authenticates to the sentinels and the
// username= and password= query options to the master (go-redis's
// ParseFailoverURL); further sentinels or cluster nodes may also be given
// as addr=host:port options. A host is always required (go-redis would
// default to localhost); a port is not (6379).
package redisurl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Kind is the deployment a URL names.
type Kind int

// Kinds.
const (
	Single Kind = iota
	Sentinel
	Cluster
)

// String names the kind: single, sentinel or cluster.
func (k Kind) String() string {
	switch k {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	default:
		return "single"
	}
}

// Target is a parsed URL: exactly one of the option pointers is set, as
// Kind says.
type Target struct {
	Kind     Kind
	Single   *redis.Options
	Failover *redis.FailoverOptions
	Cluster  *redis.ClusterOptions
}

// Schemes lists the accepted URL schemes, for messages.
const Schemes = "redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"

// Parse parses raw. Its errors never contain the URL's password (nor the
// URL itself, which may hold one in a query option).
func Parse(raw string) (*Target, error) {
	t, err := parse(raw)
	if err != nil {
		return nil, scrub(err, raw)
	}
	return t, nil
}

func parse(raw string) (*Target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a URL: " + Schemes + " expected")
	}
	base, kind, ok := splitScheme(strings.ToLower(scheme))
	if !ok {
		return nil, fmt.Errorf("scheme %q is not one of %s", scheme, Schemes)
	}
	// The authority may list several hosts separated by commas; net/url
	// does not read that form, so the extra hosts become addr= options,
	// which go-redis reads for Sentinel and Cluster.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hostlist := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostlist = authority[:i+1], authority[i+1:]
	}
	hosts := strings.Split(hostlist, ",")
	for _, h := range hosts {
		if h == "" || strings.HasPrefix(h, ":") {
			return nil, errors.New("a host is required")
		}
	}
	if len(hosts) > 1 && kind == Single {
		return nil, errors.New("several hosts need redis+sentinel:// or redis+cluster://")
	}
	u, err := url.Parse(base + "://" + userinfo + hosts[0] + tail)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Hostname() == "" {
		return nil, errors.New("a host is required")
	}
	if u.Fragment != "" {
		return nil, errors.New("a fragment (#…) has no meaning here")
	}
	if len(hosts) > 1 {
		q := u.Query()
		for _, h := range hosts[1:] {
			if _, _, err := net.SplitHostPort(h); err != nil {
				h = net.JoinHostPort(strings.Trim(h, "[]"), "6379")
			}
			q.Add("addr", h)
		}
		u.RawQuery = q.Encode()
	}
	t := &Target{Kind: kind}
	switch kind {
	case Single:
		t.Single, err = redis.ParseURL(u.String())
	case Sentinel:
		t.Failover, err = redis.ParseFailoverURL(u.String())
		if err == nil && t.Failover.MasterName == "" {
			err = errors.New("master_name=… is required with Sentinel")
		}
	case Cluster:
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return nil, errors.New("a cluster has only database 0")
		}
		u.Path = ""
		t.Cluster, err = redis.ParseClusterURL(u.String())
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func splitScheme(s string) (base string, kind Kind, ok bool) {
	base, topo, _ := strings.Cut(s, "+")
	if base != "redis" && base != "rediss" {
		return "", 0, false
	}
	switch topo {
	case "":
		return base, Single, true
	case "sentinel":
		return base, Sentinel, true
	case "cluster":
		return base, Cluster, true
	}
	return "", 0, false
}

// scrub removes the URL and its secrets from err's message.
func scrub(err error, raw string) error {
	msg := err.Error()
	secrets := []string{raw}
	_, rest, _ := strings.Cut(raw, "://")
	authority, query := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if _, q, ok := strings.Cut(rest, "?"); ok {
		query, _, _ = strings.Cut(q, "#")
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		if _, pw, ok := strings.Cut(authority[:i], ":"); ok {
			secrets = append(secrets, pw)
			if dec, err := url.PathUnescape(pw); err == nil {
				secrets = append(secrets, dec)
			}
		}
	}
	if vals, err := url.ParseQuery(query); err == nil {
		for k, vs := range vals {
			if strings.Contains(strings.ToLower(k), "password") {
				secrets = append(secrets, vs...)
			}
		}
	}
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return errors.New(strings.TrimPrefix(msg, "redis: "))
}

// TLS returns the TLS configuration the URL asks for (rediss…), or nil.
func (t *Target) TLS() *tls.Config {
	switch t.Kind {
	case Sentinel:
		return t.Failover.TLSConfig
	case Cluster:
		return t.Cluster.TLSConfig
	default:
		return t.Single.TLSConfig
	}
}
