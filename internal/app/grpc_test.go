package app_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sessiongate/sessiongate/clerktest"
	"github.com/sessiongate/sessiongate/config"
	"github.com/sessiongate/sessiongate/internal/app"
	"github.com/sessiongate/sessiongate/internal/testcert"
	"github.com/sessiongate/sessiongate/proxy"
)

// grpcUpstream is a real gRPC server with grpc's health service (unary
// Check, server-streaming Watch), recording the identity metadata each
// call arrived with.
type grpcUpstream struct {
	addr   string
	health *health.Server

	mu    sync.Mutex
	users []string
}

func startGRPC(t *testing.T, creds credentials.TransportCredentials) *grpcUpstream {
	t.Helper()
	u := &grpcUpstream{health: health.NewServer()}
	record := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		u.mu.Lock()
		u.users = append(u.users, md.Get("x-sessiongate-user-id")...)
		u.mu.Unlock()
	}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, u.health)
	u.health.SetServingStatus("sessiongate.test", healthpb.HealthCheckResponse_SERVING)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return u
}

func (u *grpcUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.users...)
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// exerciseHealth runs unary and streaming calls through the gate at addr,
// with a valid token and without one.
func exerciseHealth(t *testing.T, g *opsGate, up *grpcUpstream, creds credentials.TransportCredentials) {
	t.Helper()
	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	authed := withToken(ctx, g.token(t, "user_grpc"))

	// Unary, with its status in the trailers.
	resp, err := client.Check(authed, &healthpb.HealthCheckRequest{Service: "sessiongate.test"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
	// An error status from the upstream (a trailers-only answer) arrives as
	// the upstream sent it.
	_, err = client.Check(authed, &healthpb.HealthCheckRequest{Service: "no.such.service"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v, want NotFound from the upstream", err)
	}

	// Server streaming: each update arrives while the stream stays open.
	stream, err := client.Watch(authed, &healthpb.HealthCheckRequest{Service: "sessiongate.test"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first message: %v %v", m, err)
	}
	up.health.SetServingStatus("sessiongate.test", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch update: %v %v", m, err)
	}
	up.health.SetServingStatus("sessiongate.test", healthpb.HealthCheckResponse_SERVING)
	if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch second update: %v %v", m, err)
	}

	for _, u := range up.seen() {
		if u != "user_grpc" {
			t.Fatalf("the upstream saw identity %q", u)
		}
	}
	if n := len(up.seen()); n != 3 {
		t.Fatalf("the upstream saw %d calls, want 3", n)
	}

	// Rejections: the gate answers HTTP 401 (JSON, not a gRPC status), and
	// gRPC clients map it to Unauthenticated. Nothing reaches the upstream.
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "sessiongate.test"})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "session-token-missing") {
		t.Fatalf("Check without a token: %v, want Unauthenticated with the reason (docs/deployment.md#grpc)", err)
	}
	_, err = client.Check(withToken(ctx, "not.a.token"), &healthpb.HealthCheckRequest{Service: "sessiongate.test"})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Check with a bad token: %v, want Unauthenticated", err)
	}
	ws, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "sessiongate.test"})
	if err == nil {
		_, err = ws.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Watch without a token: %v, want Unauthenticated", err)
	}
	if n := len(up.seen()); n != 3 {
		t.Fatalf("rejected calls reached the upstream (%d calls)", n)
	}
}

func TestGRPCThroughTheGateOverH2C(t *testing.T) {
	t.Parallel()
	up := startGRPC(t, nil)
	g := startOps(t, opsOptions{config: func(c *config.Config, _ *clerktest.Instance) {
		c.H2C = true
		c.Routes = []config.Route{{Path: "/grpc.health.v1.Health", Upstream: "h2c://" + up.addr}}
	}})
	exerciseHealth(t, g, up, insecure.NewCredentials())
}

func TestGRPCThroughTheGateOverTLS(t *testing.T) {
	t.Parallel()
	ca := testcert.NewCA(t)
	up := startGRPC(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{ca.KeyPair(t, 50, false)}}))
	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, 51, false)
	certFile, keyFile := writeFile(t, dir, "tls.crt", certPEM), writeFile(t, dir, "tls.key", keyPEM)
	g := startOps(t, opsOptions{
		config: func(c *config.Config, _ *clerktest.Instance) {
			c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
			// An https upstream: HTTP/2 negotiated by ALPN.
			c.Routes = []config.Route{{Path: "/", Upstream: "https://localhost:" + port(up.addr)}}
		},
		options: func(o *app.Options) {
			tr := proxy.NewTransport(proxy.TransportOptions{})
			tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
			o.Transport = tr
		},
	})
	exerciseHealth(t, g, up, credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}))
}
