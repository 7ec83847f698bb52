// Command benchenv is the environment of the load harness (bench/run.sh):
// everything sessiongate is measured against, on loopback only.
//
//	benchenv [env]  -out DIR [flags]   fake Clerk + 200-byte upstream (+ bare proxies); mints token files
//	benchenv proxy  -listen ADDR -upstream URL [-transport tuned|default] [-pool=false]
//	benchenv send   -url URL -tokens FILE [-c N]   each token once, for the RSS measurement
//
// env starts, on fixed loopback ports, the fake Clerk instance (clerktest,
// long token lifetime so tokens outlive a run), a small keep-alive upstream
// that answers every request with a fixed 200-byte body and, optionally, bare
// httputil.ReverseProxy instances in front of it. It mints the token files
// the scenarios send, in parallel on every core, writes the environment and
// YAML files that point `sessiongate serve` at it, prints "ready" and runs
// until SIGTERM or SIGINT.
//
// Files written in -out:
//
//	token.txt                  one valid session token
//	tokens-10000.txt           -tokens distinct valid tokens (distinct users and sessions)
//	tokens-100000.txt          -rss-tokens distinct valid tokens (RSS with a full cache); reused when still valid
//	tokens-100-sessions.txt    -sessions tokens of as many sessions the fake's Backend API knows (scenario d)
//	sessiongate.env            SESSIONGATE_* variables for `sessiongate serve` against this environment
//	sessiongate-sessions.env   the same plus CLERK_SECRET_KEY and CLERK_API_URL (the fake's Backend API)
//	sessiongate.yaml           default caches (cache.tokens 100000)
//	sessiongate-nocache.yaml   cache.tokens: 0: every request is a cold verification (scenario c)
//	sessiongate-sessions.yaml  one catch-all route with session_check: cached (scenario d)
//	signing-key.pem            the fake's signing key, kept so big token files can be reused across runs
//
// Scenario (c) of issue 5 is "a new token per request". Minting is an RSA
// private-key operation (~0.7 ms of CPU per token here), so a client cannot
// mint fresh tokens at the 10k+ req/s the proxy serves on this machine.
// Disabling the verified-token cache (cache.tokens: 0) makes the proxy do the
// same per-request work as for a never-seen token: a full parse, signature
// verification and claim checks on every request.
//
// The bare proxy runs as a separate process (the proxy subcommand) in
// run.sh, so that it can be pinned to the same core as sessiongate and its
// CPU time read from /proc without counting the upstream's. The in-process
// bare proxies of env (-bare, -bare-default) are for quick manual runs.
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/internal/linewriter"
	"github.com/sessiongate/sessiongate/internal/netutil"
	"github.com/sessiongate/sessiongate/proxy"
)

func main() {
	args := os.Args[1:]
	cmd := "env"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "env":
		err = runEnv(args)
	case "proxy":
		err = runProxy(args)
	case "send":
		err = runSend(args)
	default:
		err = fmt.Errorf("unknown command %q (want env, proxy or send)", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchenv:", err)
		os.Exit(1)
	}
}

// loopback refuses any listen address that is not a loopback IP: the fake
// mints tokens it vouches for, and nothing here is meant to be reachable.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if !netutil.IsLoopbackIP(host) {
		return fmt.Errorf("address %q: only loopback IPs are allowed", addr)
	}
	return nil
}

func listen(addr string) (net.Listener, error) {
	if err := loopback(addr); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

// ---------------------------------------------------------------- env

type envFlags struct {
	out                                  string
	clerk, upstream, bare, bareDefault   string
	gate, gateAdmin                      string
	lifetime, minRemaining               time.Duration
	tokens, rssTokens, sessions, bodyLen int
	org                                  bool
	azp                                  string
}

func runEnv(args []string) error {
	fs := flag.NewFlagSet("benchenv env", flag.ContinueOnError)
	f := envFlags{}
	fs.StringVar(&f.out, "out", "", "output directory for token files and sessiongate config (required)")
	fs.StringVar(&f.clerk, "clerk", "127.0.0.1:18100", "fake Clerk instance listen address")
	fs.StringVar(&f.upstream, "upstream", "127.0.0.1:18101", "upstream listen address")
	fs.StringVar(&f.bare, "bare", "", "in-process bare proxy with proxy.NewTransport and a buffer pool (empty: none)")
	fs.StringVar(&f.bareDefault, "bare-default", "", "in-process bare proxy with Go's default transport, no buffer pool (empty: none)")
	fs.StringVar(&f.gate, "gate", "127.0.0.1:18080", "sessiongate listen address written to sessiongate.env")
	fs.StringVar(&f.gateAdmin, "gate-admin", "127.0.0.1:18090", "sessiongate admin listen address written to sessiongate.env")
	fs.DurationVar(&f.lifetime, "lifetime", 6*time.Hour, "lifetime of minted tokens")
	fs.DurationVar(&f.minRemaining, "min-remaining", time.Hour, "reuse an existing token file only if its tokens live at least this long")
	fs.IntVar(&f.tokens, "tokens", 10000, "distinct tokens in tokens-N.txt (scenario b)")
	fs.IntVar(&f.rssTokens, "rss-tokens", 100000, "distinct tokens in tokens-N.txt for the RSS measurement (0: none)")
	fs.IntVar(&f.sessions, "sessions", 100, "sessions (one token each) in tokens-N-sessions.txt (scenario d)")
	fs.IntVar(&f.bodyLen, "body", 200, "upstream response body size in bytes")
	fs.BoolVar(&f.org, "org", true, "give minted tokens an active organization (adds org identity headers)")
	fs.StringVar(&f.azp, "azp", clerktest.DefaultAuthorizedParty, "azp of minted tokens (and SESSIONGATE_AUTHORIZED_PARTIES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.out == "" {
		return errors.New("-out is required")
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	for _, a := range []string{f.gate, f.gateAdmin} {
		if err := loopback(a); err != nil {
			return err
		}
	}

	key, err := loadOrCreateKey(filepath.Join(f.out, "signing-key.pem"))
	if err != nil {
		return err
	}
	if err := loopback(f.clerk); err != nil {
		return err
	}
	inst, err := clerktest.New(clerktest.Options{
		Addr: f.clerk, TokenLifetime: f.lifetime, SigningKey: key, AuthorizedParty: f.azp,
	})
	if err != nil {
		return fmt.Errorf("fake Clerk: %w", err)
	}
	defer inst.Close()

	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	serve := func(addr string, h http.Handler) error {
		ln, err := listen(addr)
		if err != nil {
			return err
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		servers = append(servers, s)
		go func() { _ = s.Serve(ln) }()
		return nil
	}

	body := make([]byte, f.bodyLen)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	if f.bodyLen > 0 {
		body[len(body)-1] = '\n'
	}
	clen := fmt.Sprint(len(body))
	if err := serve(f.upstream, upstreamHandler(body, clen)); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	upURL := &url.URL{Scheme: "http", Host: f.upstream}
	if f.bare != "" {
		if err := serve(f.bare, bareProxy(upURL, proxy.NewTransport(proxy.TransportOptions{}), true)); err != nil {
			return fmt.Errorf("bare proxy: %w", err)
		}
	}
	if f.bareDefault != "" {
		if err := serve(f.bareDefault, bareProxy(upURL, http.DefaultTransport.(*http.Transport).Clone(), false)); err != nil {
			return fmt.Errorf("bare proxy (default transport): %w", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := writeFiles(ctx, f, inst); err != nil {
		return err
	}
	fmt.Printf("issuer %s\nupstream %s\n", inst.Issuer(), upURL)
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// upstreamHandler answers every request with the same body, keep-alive,
// after discarding any request body.
func upstreamHandler(body []byte, clen string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{clen}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// bareProxy is the reference: an httputil.ReverseProxy with no
// authentication. With pool, it recycles the 32 KiB body-copy buffers as
// sessiongate's proxy does (proxy.New sets a BufferPool): the baseline is then
// sessiongate's ReverseProxy set-up minus the gate, so the ratios measure the
// gate and not a buffer pool. Without pool it is ReverseProxy's zero value,
// which allocates a buffer per request.
func bareProxy(up *url.URL, t http.RoundTripper, pool bool) *httputil.ReverseProxy {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			pr.Out.Host = ""
		},
		Transport: t,
	}
	if pool {
		rp.BufferPool = newBufferPool()
	}
	return rp
}

// sameHeaders are the headers sessiongate adds upstream for the harness's
// tokens (a session with an active organization), as constants of the same
// lengths: X-Request-Id and the identity headers.
var sameHeaders = [...][2]string{
	{"X-Request-Id", "89c0b72e14230000000000000001"},
	{"X-Sessiongate-Token-Type", "session_token"},
	{"X-Sessiongate-User-Id", "user_2NNEqL2nrIRdJ194ndJqAHwEfxC"},
	{"X-Sessiongate-Session-Id", "sess_2NNEqL2nrIRdJ194ndJqAHwEfxC"},
	{"X-Sessiongate-Org-Id", "org_2bench"},
	{"X-Sessiongate-Org-Slug", "acme"},
	{"X-Sessiongate-Org-Role", "org:admin"},
	{"X-Sessiongate-Org-Permissions", "org:docs:read,org:docs:write,org:billing:read"},
}

// sameWork wraps the bare proxy with the work sessiongate does besides
// authentication: the same headers upstream (constants), X-Request-Id on
// the answer, and one JSON access line per request written like
// sessiongate's (hand-encoded, through the same group-commit writer). What
// sessiongate costs more than this row is its own work: routing, path
// checks, stripping inbound identity headers, the token cache, metrics.
func sameWork(rp *httputil.ReverseProxy, accessLog io.Writer) http.Handler {
	rewrite := rp.Rewrite
	rp.Rewrite = func(pr *httputil.ProxyRequest) {
		rewrite(pr)
		for _, h := range sameHeaders {
			pr.Out.Header[h[0]] = []string{h[1]}
		}
	}
	bufs := sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header()["X-Request-Id"] = []string{sameHeaders[0][1]}
		rp.ServeHTTP(w, r)
		if accessLog == nil {
			return
		}
		bp := bufs.Get().(*[]byte)
		b := append((*bp)[:0], `{"level":"info","ts":"`...)
		b = time.Now().AppendFormat(b, "2006-01-02T15:04:05.000Z0700")
		b = append(b, `","logger":"proxy","msg":"request","method":`...)
		b = strconv.AppendQuote(b, r.Method)
		b = append(b, `,"path":`...)
		b = strconv.AppendQuote(b, r.URL.Path)
		b = append(b, `,"original_path":"","route":"app","status":200,"reason":"","duration":`...)
		b = strconv.AppendFloat(b, time.Since(start).Seconds(), 'f', -1, 64)
		b = append(b, `,"user_id":"`...)
		b = append(b, sameHeaders[2][1]...)
		b = append(b, `","request_id":"`...)
		b = append(b, sameHeaders[0][1]...)
		b = append(b, "\"}\n"...)
		_, _ = accessLog.Write(b)
		*bp = b
		bufs.Put(bp)
	})
}

// bufferPool is the same as sessiongate's (proxy/proxy.go, unexported).
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	bp := &bufferPool{}
	bp.p.New = func() any { return new([32 << 10]byte) }
	return bp
}

func (bp *bufferPool) Get() []byte { return bp.p.Get().(*[32 << 10]byte)[:] }
func (bp *bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		bp.p.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}

func writeFiles(ctx context.Context, f envFlags, inst *clerktest.Instance) error {
	key := inst.SigningKey()
	var orgOpt []clerktest.TokenOption
	if f.org {
		orgOpt = append(orgOpt, clerktest.WithOrg(clerktest.Org{ID: "org_2bench", Slug: "acme", Role: "admin",
			Permissions: []string{"org:docs:read", "org:docs:write", "org:billing:read"}}))
	}
	mintTo := func(name string, n int, reusable bool) error {
		path := filepath.Join(f.out, name)
		if reusable && tokenFileValid(path, n, inst.Issuer(), key.ID, f.minRemaining) {
			fmt.Fprintf(os.Stderr, "benchenv: reusing %s\n", path)
			return nil
		}
		start := time.Now()
		toks, err := mintParallel(ctx, inst, n, orgOpt)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := writeLines(path, toks); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "benchenv: minted %d tokens into %s in %.1fs\n", n, path, time.Since(start).Seconds())
		return nil
	}
	if err := mintTo("token.txt", 1, false); err != nil {
		return err
	}
	// The sessions of scenario (d) must exist in this process's fake, so
	// these tokens are minted on every start (Mint records each session).
	if f.sessions > 0 {
		if err := mintTo(fmt.Sprintf("tokens-%d-sessions.txt", f.sessions), f.sessions, false); err != nil {
			return err
		}
	}
	if f.tokens > 0 {
		if err := mintTo(fmt.Sprintf("tokens-%d.txt", f.tokens), f.tokens, true); err != nil {
			return err
		}
	}
	if f.rssTokens > 0 {
		if err := mintTo(fmt.Sprintf("tokens-%d.txt", f.rssTokens), f.rssTokens, true); err != nil {
			return err
		}
	}

	upstream := "http://" + f.upstream
	base := []string{
		"SESSIONGATE_ISSUER=" + inst.Issuer(),
		"SESSIONGATE_JWKS_URL=" + inst.FrontendJWKSURL(),
		"SESSIONGATE_UPSTREAM=" + upstream,
		"SESSIONGATE_LISTEN=" + f.gate,
		"SESSIONGATE_ADMIN_LISTEN=" + f.gateAdmin,
		"SESSIONGATE_AUTHORIZED_PARTIES=" + f.azp,
	}
	withAPI := append(append([]string{}, base...),
		"CLERK_SECRET_KEY="+inst.SecretKey(),
		"CLERK_API_URL="+inst.APIURL(),
	)
	files := map[string]string{
		"sessiongate.env":          strings.Join(base, "\n") + "\n",
		"sessiongate-sessions.env": strings.Join(withAPI, "\n") + "\n",
		"sessiongate.yaml": "# Defaults: verified-token cache of 100000 entries.\n" +
			"# log.access is appended by run.sh (ACCESS_LOG).\n" +
			"cache:\n  tokens: 100000\n",
		"sessiongate-nocache.yaml": "# Scenario (c): the verified-token cache is disabled, so every request\n" +
			"# is a full cold verification (parse, RSA signature, claims).\n" +
			"cache:\n  tokens: 0\n",
		"sessiongate-sessions.yaml": "# Scenario (d): session status checked against the fake's Backend API,\n" +
			"# cached for cache.session_ttl (default 10s). Needs sessiongate-sessions.env.\n" +
			"cache:\n  tokens: 100000\n" +
			"routes:\n" +
			"  - path: /\n" +
			"    upstream: " + upstream + "\n" +
			"    session_check: cached\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(f.out, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// mintParallel mints n tokens of n distinct users and sessions on every
// core (RSA signing dominates).
func mintParallel(ctx context.Context, inst *clerktest.Instance, n int, opts []clerktest.TokenOption) ([]string, error) {
	toks := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t, err := inst.Mint(opts...)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				toks[i] = t
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return toks, nil
}

func writeLines(path string, lines []string) error {
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	for _, l := range lines {
		_, _ = w.WriteString(l)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// tokenFileValid reports whether path holds n tokens whose first and last
// ones carry this issuer and kid and live at least minRemaining more. It
// decodes without verifying: the tokens were written by an earlier run with
// the same persisted key, and sessiongate verifies them anyway.
func tokenFileValid(path string, n int, issuer, kid string, minRemaining time.Duration) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != n {
		return false
	}
	for _, tok := range []string{lines[0], lines[len(lines)-1]} {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			return false
		}
		var hdr struct {
			Kid string `json:"kid"`
		}
		var cl struct {
			Iss string `json:"iss"`
			Exp int64  `json:"exp"`
		}
		if decodeSeg(parts[0], &hdr) != nil || decodeSeg(parts[1], &cl) != nil {
			return false
		}
		if hdr.Kid != kid || cl.Iss != issuer || time.Until(time.Unix(cl.Exp, 0)) < minRemaining {
			return false
		}
	}
	return true
}

func decodeSeg(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// loadOrCreateKey keeps the fake's signing key in a PEM file (kid in a PEM
// header) so that big token files stay valid across runs.
func loadOrCreateKey(path string) (*clerktest.SigningKey, error) {
	if data, err := os.ReadFile(path); err == nil {
		blk, _ := pem.Decode(data)
		if blk != nil && blk.Type == "RSA PRIVATE KEY" && blk.Headers["Kid"] != "" {
			if priv, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
				alg := blk.Headers["Alg"]
				if alg == "" {
					alg = "RS256"
				}
				return &clerktest.SigningKey{ID: blk.Headers["Kid"], Algorithm: alg, Private: priv}, nil
			}
		}
		fmt.Fprintf(os.Stderr, "benchenv: %s is not a usable key; making a new one\n", path)
	}
	k, err := clerktest.NewSigningKey("", "RS256")
	if err != nil {
		return nil, err
	}
	blk := &pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Kid": k.ID, "Alg": k.Algorithm},
		Bytes: x509.MarshalPKCS1PrivateKey(k.Private)}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// ---------------------------------------------------------------- proxy

func runProxy(args []string) error {
	fs := flag.NewFlagSet("benchenv proxy", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:18102", "listen address")
	up := fs.String("upstream", "http://127.0.0.1:18101", "upstream URL")
	tr := fs.String("transport", "tuned", "tuned (proxy.NewTransport, as sessiongate) or default (http.DefaultTransport)")
	pool := fs.Bool("pool", true, "recycle body-copy buffers (ReverseProxy.BufferPool), as sessiongate does")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (bench/run.sh PROFILE=1)")
	same := fs.Bool("same-work", false, "also do sessiongate's work besides authentication: its upstream headers (constants), X-Request-Id, a JSON access line")
	accessLog := fs.String("access-log", "", "with -same-work: append the access lines to this file (default: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pprofAddr != "" {
		pl, err := listen(*pprofAddr)
		if err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { _ = http.Serve(pl, mux) }()
	}
	u, err := url.Parse(*up)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-upstream %q: want an http:// URL", *up)
	}
	if err := loopback(u.Host); err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	var t http.RoundTripper
	switch *tr {
	case "tuned":
		t = proxy.NewTransport(proxy.TransportOptions{})
	case "default":
		t = http.DefaultTransport.(*http.Transport).Clone()
	default:
		return fmt.Errorf("-transport %q: want tuned or default", *tr)
	}
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	var h http.Handler = bareProxy(u, t, *pool)
	if *same {
		var out io.Writer
		if *accessLog != "" {
			f, err := os.OpenFile(*accessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("-access-log: %w", err)
			}
			defer f.Close()
			lw := linewriter.New(f, 0)
			defer func() { _ = lw.Sync() }()
			out = lw
		}
		h = sameWork(bareProxy(u, t, *pool), out)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	fmt.Println("ready")
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ---------------------------------------------------------------- send

// runSend sends each token of a file once (GET url, Authorization: Bearer),
// with c concurrent keep-alive connections, and reports the status counts.
func runSend(args []string) error {
	fs := flag.NewFlagSet("benchenv send", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:18080/", "URL to send to")
	file := fs.String("tokens", "", "token file, one per line (required)")
	conc := fs.Int("c", 32, "concurrent connections")
	timeout := fs.Duration("timeout", 120*time.Second, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil {
		return err
	}
	if err := loopback(u.Host); err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	toks := strings.Fields(string(data))
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: *conc, MaxIdleConns: *conc},
		Timeout:   10 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var next, ok, bad, errs atomic.Int64
	var firstBad atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(toks) {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
				req.Header.Set("Authorization", "Bearer "+toks[i])
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok.Add(1)
				} else {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %s %s", resp.StatusCode,
						resp.Header.Get("X-Clerk-Auth-Reason"), strings.TrimSpace(string(b))))
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("sent %d ok %d non2xx %d errors %d in %.1fs (%.0f req/s)\n",
		ok.Load()+bad.Load()+errs.Load(), ok.Load(), bad.Load(), errs.Load(), el.Seconds(),
		float64(ok.Load()+bad.Load())/el.Seconds())
	if v := firstBad.Load(); v != nil {
		fmt.Printf("first failure: %s\n", v)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped early: %w", ctx.Err())
	}
	return nil
}
