package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/scoregate/scoregate/certs/certstest"
)

// TestServeGRPCBackend: serve --backend h2c://… carries a grpc-go client's
// calls over TLS to a grpc-go server, checks the replica's health by
// grpc.health.v1, and answers a call it refuses with a gRPC status.
func TestServeGRPCBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	dir := t.TempDir()
	f := certstest.NewFiles(t, dir, "api.example.com")
	keyFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keyFile, []byte("right-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
		"--backend", "h2c://"+ln.Addr().String(), "--health-interval", "50ms", "--auth-key-file", keyFile)
	creds := credentials.NewTLS(&tls.Config{RootCAs: poolOf(t, f.CAFile), ServerName: "api.example.com"})
	cc, err := grpc.NewClient(ts.tlsAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ready := func() bool { code, _ := readyzJSON(t, ts); return code == http.StatusOK }
	waitFor(t, 10*time.Second, "/readyz 200 with the replica SERVING", ready)

	_, err = c.Check(ctx, &healthpb.HealthCheckRequest{})
	if s := status.Convert(err); s.Code() != codes.Unauthenticated {
		t.Errorf("without a key: %v %q, want Unauthenticated", s.Code(), s.Message())
	}
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.PerRPCCredentials(bearerKey("right-key-0123456789")))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check through scoregate: %v %v, want SERVING", resp, err)
	}

	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, 10*time.Second, "/readyz 503 with the replica NOT_SERVING", func() bool { return !ready() })
}

// bearerKey sends an Authorization: Bearer key with every call.
type bearerKey string

func (k bearerKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(k)}, nil
}

func (bearerKey) RequireTransportSecurity() bool { return true }
