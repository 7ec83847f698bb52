package redisurl_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/sessiongate/internal/redisurl"
)

func TestParseSingle(t *testing.T) {
	t.Parallel()
	tg, err := redisurl.Parse("redis://app:s3cret@cache.internal:6380/2?dial_timeout=3s&client_name=gate")
	if err != nil {
		t.Fatal(err)
	}
	o := tg.Single
	if tg.Kind != redisurl.Single || o.Addr != "cache.internal:6380" || o.Username != "app" || o.Password != "s3cret" ||
		o.DB != 2 || o.DialTimeout != 3*time.Second || o.ClientName != "gate" || o.TLSConfig != nil {
		t.Fatalf("%+v", o)
	}
	tg, err = redisurl.Parse("redis://cache")
	if err != nil || tg.Single.Addr != "cache:6379" || tg.Single.DB != 0 {
		t.Fatalf("defaults: %v %+v", err, tg)
	}
}

func TestParseTLS(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"rediss://:pw@cache.example.com:6380/0", "rediss+sentinel://s1.example.com:26379?master_name=m", "rediss+cluster://cache.example.com:7000"} {
		tg, err := redisurl.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		c := tg.TLS()
		if c == nil {
			t.Fatalf("%s: no TLS configuration", raw)
		}
		if !strings.HasSuffix(c.ServerName, ".example.com") || c.InsecureSkipVerify {
			t.Fatalf("%s: server name %q, skip verify %v", raw, c.ServerName, c.InsecureSkipVerify)
		}
	}
	for _, raw := range []string{"redis://cache", "redis+sentinel://s1?master_name=m", "redis+cluster://n1"} {
		if tg, err := redisurl.Parse(raw); err != nil || tg.TLS() != nil {
			t.Fatalf("%s: TLS without rediss: %v", raw, err)
		}
	}
}

func TestParseSentinel(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"redis+sentinel://sent:spw@s1:26379,s2:26379,[::1]:26380/3?master_name=mymaster&password=mpw",
		"redis+sentinel://sent:spw@s1:26379/3?master_name=mymaster&password=mpw&addr=s2:26379&addr=[::1]:26380",
	} {
		tg, err := redisurl.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		o := tg.Failover
		want := []string{"s1:26379", "s2:26379", "[::1]:26380"}
		if tg.Kind != redisurl.Sentinel || o.MasterName != "mymaster" || !slices.Equal(o.SentinelAddrs, want) ||
			o.SentinelUsername != "sent" || o.SentinelPassword != "spw" || o.Password != "mpw" || o.DB != 3 {
			t.Fatalf("%s: %+v", raw, o)
		}
	}
}

func TestParseCluster(t *testing.T) {
	t.Parallel()
	tg, err := redisurl.Parse("redis+cluster://u:p@n1:7000,n2:7001,n3?read_only=true")
	if err != nil {
		t.Fatal(err)
	}
	o := tg.Cluster
	if tg.Kind != redisurl.Cluster || !slices.Equal(o.Addrs, []string{"n1:7000", "n2:7001", "n3:6379"}) || o.Username != "u" || o.Password != "p" || !o.ReadOnly {
		t.Fatalf("%+v", o)
	}
}

func TestParseRefusesBadURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw, want string }{
		{"http", "http://cache:6379", "scheme"},
		{"unix socket", "unix:///run/redis.sock", "scheme"},
		{"unknown topology", "redis+ring://a,b", "scheme"},
		{"no scheme", "cache:6379", "not a URL"},
		{"no host", "redis://:6379", "host"},
		{"empty host in list", "redis+cluster://a:1,,b:2", "host"},
		{"several hosts single", "redis://a:6379,b:6379", "sentinel"},
		{"database not a number", "redis://cache/x", "database"},
		{"two path segments", "redis://cache/1/2", "path"},
		{"unknown option", "redis://cache?colour=blue", "colour"},
		{"bad duration", "redis://cache?dial_timeout=soon", "dial_timeout"},
		{"sentinel without master", "redis+sentinel://s1:26379", "master_name"},
		{"cluster database", "redis+cluster://n1:7000/3", "database 0"},
		{"bad port", "redis://cache:port", "URL"},
		{"fragment", "redis://cache#x", "fragment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := redisurl.Parse(tc.raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"redis://user:hunter22@cache:port",
		"redis://user:hunter22@cache/x",
		"redis+sentinel://s:hunter22@s1?password=hunter22&bogus=1",
		"redis+sentinel://s1?password=hunter22",
		"redis://user:hunter22@cache?bogus=1",
	} {
		_, err := redisurl.Parse(raw)
		if err == nil {
			t.Fatalf("%s: accepted", raw)
		}
		if strings.Contains(err.Error(), "hunter22") {
			t.Fatalf("the password leaked: %v", err)
		}
	}
}
