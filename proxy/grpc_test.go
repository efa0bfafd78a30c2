package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcBackend is a grpc-go server on 127.0.0.1 (h2c, as Triton's and
// KServe's gRPC ports are) with grpc-go's test service and its health
// service.
type grpcBackend struct {
	testgrpc.UnimplementedTestServiceServer
	addr     string
	health   *health.Server
	held     chan struct{} // a held call reached the backend (UnaryCall with FillUsername)
	canceled chan struct{} // a held call's context ended
}

func startGRPCBackend(t testing.TB) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &grpcBackend{addr: ln.Addr().String(), health: health.NewServer(), held: make(chan struct{}, 1), canceled: make(chan struct{}, 1)}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20))
	testgrpc.RegisterTestServiceServer(srv, b)
	healthpb.RegisterHealthServer(srv, b.health)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return b
}

// UnaryCall answers with a payload of the asked size and the asked status;
// it echoes metadata x-echo-initial as a header and x-echo-trailing as a
// trailer. With FillUsername it holds the call until the client's context
// ends, and reports that on canceled.
func (b *grpcBackend) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-echo-initial"); len(v) > 0 {
		grpc.SetHeader(ctx, metadata.Pairs("x-echo-initial", v[0]))
	}
	if v := md.Get("x-echo-trailing"); len(v) > 0 {
		grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailing", v[0]))
	}
	if in.GetFillUsername() {
		b.held <- struct{}{}
		<-ctx.Done()
		b.canceled <- struct{}{}
		return nil, ctx.Err()
	}
	if s := in.GetResponseStatus(); s != nil && s.GetCode() != 0 {
		return nil, status.Error(codes.Code(s.GetCode()), s.GetMessage())
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: bytes.Repeat([]byte{'r'}, int(in.GetResponseSize()))}}, nil
}

// StreamingOutputCall sends one message per ResponseParameters entry.
func (b *grpcBackend) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, s testgrpc.TestService_StreamingOutputCallServer) error {
	for _, p := range in.GetResponseParameters() {
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall sums the sizes of the payloads it receives.
func (b *grpcBackend) StreamingInputCall(s testgrpc.TestService_StreamingInputCallServer) error {
	var sum int32
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		sum += int32(len(in.GetPayload().GetBody()))
	}
}

// FullDuplexCall answers each message as it arrives, before the next.
func (b *grpcBackend) FullDuplexCall(s testgrpc.TestService_FullDuplexCallServer) error {
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		size := int32(0)
		if ps := in.GetResponseParameters(); len(ps) > 0 {
			size = ps[0].GetSize()
		}
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, size)}}); err != nil {
			return err
		}
	}
}

// grpcClient dials front over TLS (HTTP/2 by ALPN) with authority as the
// :authority.
func grpcClient(t *testing.T, front *httptest.Server, authority string) testgrpc.TestServiceClient {
	t.Helper()
	creds := frontCreds(front.Certificate())
	cc, err := grpc.NewClient(front.Listener.Addr().String(), grpc.WithTransportCredentials(creds), grpc.WithAuthority(authority),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// frontCreds are a gRPC client's TLS credentials for a front serving
// httptest's certificate cert, for example.com. The authority is another
// name, which grpc-go would verify; the chain is verified against
// example.com instead.
func frontCreds(cert *x509.Certificate) credentials.TransportCredentials {
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return credentials.NewTLS(&tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"})
			return err
		},
	})
}

// startGRPCFront puts a proxy for backend (an h2c:// URL) behind a TLS
// front.
func startGRPCFront(t *testing.T, backend string, cfg Config) (*Proxy, *httptest.Server) {
	t.Helper()
	p := newTestProxy(t, backend, cfg, testLog(t))
	return p, startFront(t, p)
}

func TestGRPCThroughH2CBackend(t *testing.T) {
	b := startGRPCBackend(t)
	_, front := startGRPCFront(t, "h2c://"+b.addr, Config{MaxConcurrentPerReplica: 200})
	c := grpcClient(t, front, testCName)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	t.Run("unary 4 MiB with metadata and trailers", func(t *testing.T) {
		const size = 4 << 20
		var header, trailer metadata.MD
		mctx := metadata.AppendToOutgoingContext(ctx, "x-echo-initial", "hello", "x-echo-trailing", "bye")
		resp, err := c.UnaryCall(mctx, &testgrpc.SimpleRequest{ResponseSize: size, Payload: &testgrpc.Payload{Body: make([]byte, size)}},
			grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
		if n := len(resp.GetPayload().GetBody()); n != size {
			t.Errorf("payload %d bytes, want %d", n, size)
		}
		if got := header.Get("x-echo-initial"); len(got) != 1 || got[0] != "hello" {
			t.Errorf("header x-echo-initial = %q, want hello", got)
		}
		if got := trailer.Get("x-echo-trailing"); len(got) != 1 || got[0] != "bye" {
			t.Errorf("trailer x-echo-trailing = %q, want bye", got)
		}
	})
	t.Run("status and message from the backend", func(t *testing.T) {
		const msg = "no such model: iris ✓ 100%"
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: msg}})
		if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != msg {
			t.Errorf("got %v %q, want NotFound %q", s.Code(), s.Message(), msg)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		params := make([]*testgrpc.ResponseParameters, 10)
		for i := range params {
			params[i] = &testgrpc.ResponseParameters{Size: int32(i * 1000)}
		}
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for i := range params {
			m, err := s.Recv()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if len(m.GetPayload().GetBody()) != i*1000 {
				t.Errorf("message %d: %d bytes, want %d", i, len(m.GetPayload().GetBody()), i*1000)
			}
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Errorf("after the last message: %v, want io.EOF", err)
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		s, err := c.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{27182, 8, 1828, 45904} {
			if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := s.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetAggregatedPayloadSize() != 74922 {
			t.Errorf("aggregated size %d, want 74922", resp.GetAggregatedPayloadSize())
		}
	})
	t.Run("bidirectional, each answer before the next message", func(t *testing.T) {
		s, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int32{31415, 9, 2653, 58979} {
			if err := s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: n}}}); err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv() // the proxy must not hold the answer back
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			if int32(len(m.GetPayload().GetBody())) != n {
				t.Errorf("answer %d: %d bytes, want %d", i, len(m.GetPayload().GetBody()), n)
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Errorf("after CloseSend: %v, want io.EOF", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer dcancel()
		_, err := c.UnaryCall(dctx, &testgrpc.SimpleRequest{FillUsername: true})
		if s := status.Convert(err); s.Code() != codes.DeadlineExceeded {
			t.Errorf("got %v %q, want DeadlineExceeded", s.Code(), s.Message())
		}
		waitCanceled(t, b)
	})
	t.Run("cancel reaches the backend", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := c.UnaryCall(cctx, &testgrpc.SimpleRequest{FillUsername: true})
			errc <- err
		}()
		waitSignal(t, b.held, "the held call to reach the backend")
		ccancel()
		if s := status.Convert(<-errc); s.Code() != codes.Canceled {
			t.Errorf("got %v, want Canceled", s.Code())
		}
		waitSignal(t, b.canceled, "the backend's call to be canceled")
	})
	t.Run("200 concurrent calls on one connection", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for range 200 {
			wg.Go(func() {
				s, err := c.FullDuplexCall(ctx)
				if err == nil {
					err = s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 100}}})
				}
				if err == nil {
					_, err = s.Recv()
				}
				if err == nil {
					err = s.CloseSend()
				}
				if err == nil {
					if _, err = s.Recv(); err == io.EOF {
						err = nil
					}
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("stream: %v", err)
		}
	})
}

// waitCanceled waits until a held call reached the backend and its
// context ended there.
func waitCanceled(t *testing.T, b *grpcBackend) {
	t.Helper()
	waitSignal(t, b.held, "the held call to reach the backend")
	waitSignal(t, b.canceled, "the backend's call to be canceled")
}

func waitSignal(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitLimit):
		t.Fatalf("waited %v for %s", waitLimit, what)
	}
}

func TestGRPCRefusalsAreGRPCStatuses(t *testing.T) {
	b := startGRPCBackend(t)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close() // nothing listens there now: connections are refused

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, tc := range []struct {
		name      string
		backend   string
		cfg       Config
		authority string
		want      codes.Code
		wantMsg   string
	}{
		{"wrong host", "h2c://" + b.addr, Config{}, "other.example.com", codes.Unavailable, "not this server's name"},
		{"no key", "h2c://" + b.addr, Config{Auth: NewKeySet([]string{"right"})}, testCName, codes.Unauthenticated, msgUnauthorized},
		{"backend down", "h2c://" + downAddr, Config{}, testCName, codes.Unavailable, msgBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, front := startGRPCFront(t, tc.backend, tc.cfg)
			c := grpcClient(t, front, tc.authority)
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			s := status.Convert(err)
			if s.Code() != tc.want || !strings.Contains(s.Message(), tc.wantMsg) {
				t.Errorf("got %v %q, want %v with %q", s.Code(), s.Message(), tc.want, tc.wantMsg)
			}
		})
	}
}

func TestGRPCAdmissionRefusal(t *testing.T) {
	b := startGRPCBackend(t)
	_, front := startGRPCFront(t, "h2c://"+b.addr, Config{MaxConcurrentPerReplica: 1, MaxQueueWait: 50 * time.Millisecond})
	c := grpcClient(t, front, testCName)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	hctx, release := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.UnaryCall(hctx, &testgrpc.SimpleRequest{FillUsername: true}) // holds the one slot
	}()
	waitSignal(t, b.held, "the held call to reach the backend")
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != msgQueueTimeout {
		t.Errorf("got %v %q, want Unavailable %q", s.Code(), s.Message(), msgQueueTimeout)
	}
	release()
	<-done
	waitSignal(t, b.canceled, "the held call to end")
}

func TestGRPCOverHTTP1IsAClearError(t *testing.T) {
	b := startGRPCBackend(t)
	_, front := startGRPCFront(t, "h2c://"+b.addr, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req := newRequest(t, ctx, front, http.MethodPost, "/grpc.testing.TestService/EmptyCall", testCName, bytes.NewReader(grpcHealthRequest))
	req.Header.Set("Content-Type", "application/grpc")
	resp, body := do(t, clientFor(t, front, 1), req, 1)
	if resp.StatusCode != http.StatusHTTPVersionNotSupported || !strings.Contains(body, "gRPC needs HTTP/2") {
		t.Errorf("got %d %s, want 505 saying gRPC needs HTTP/2", resp.StatusCode, body)
	}
}

func TestGRPCTimeoutBoundsTheWait(t *testing.T) {
	b := startGRPCBackend(t)
	_, front := startGRPCFront(t, "h2c://"+b.addr, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	// A raw HTTP/2 gRPC request with a short grpc-timeout and no deadline
	// of its own: the answer must be scoregate's DEADLINE_EXCEEDED.
	msg := []byte{0, 0, 0, 0, 2, 0x20, 1} // SimpleRequest{fill_username: true}: field 4, varint (4<<3)
	req := newRequest(t, ctx, front, http.MethodPost, "/grpc.testing.TestService/UnaryCall", testCName, bytes.NewReader(msg))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "150m")
	resp, _ := do(t, clientFor(t, front, 2), req, 2)
	code := resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status")
	if resp.StatusCode != http.StatusOK || code != "4" {
		t.Errorf("got HTTP %d grpc-status %q (%q), want 200 and 4 (DEADLINE_EXCEEDED)", resp.StatusCode, code, resp.Header.Get("Grpc-Message"))
	}
	waitCanceled(t, b)

	req = newRequest(t, ctx, front, http.MethodPost, "/grpc.testing.TestService/UnaryCall", testCName, bytes.NewReader(msg))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Grpc-Timeout", "soon")
	resp, _ = do(t, clientFor(t, front, 2), req, 2)
	if got := resp.Header.Get("Grpc-Status"); got != "3" || !strings.Contains(resp.Header.Get("Grpc-Message"), "grpc-timeout") {
		t.Errorf("malformed grpc-timeout: grpc-status %q %q, want 3 naming grpc-timeout", got, resp.Header.Get("Grpc-Message"))
	}
}

func TestGRPCHealthCheck(t *testing.T) {
	b := startGRPCBackend(t)
	p, _ := startGRPCFront(t, "h2c://"+b.addr, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	rep := p.dflt.pool.snapshot()[0]
	for _, tc := range []struct {
		status  healthpb.HealthCheckResponse_ServingStatus
		wantErr string
	}{
		{healthpb.HealthCheckResponse_SERVING, ""},
		{healthpb.HealthCheckResponse_NOT_SERVING, "NOT_SERVING"},
	} {
		b.health.SetServingStatus("", tc.status)
		info, _ := p.probe(ctx, rep)
		if tc.wantErr == "" && !info.Ready || tc.wantErr != "" && !strings.Contains(info.Error, tc.wantErr) {
			t.Errorf("%v: ready %v, error %q; want error %q", tc.status, info.Ready, info.Error, tc.wantErr)
		}
	}
}

// BenchmarkGRPCUnary is one small unary call from a grpc-go client to a
// grpc-go server, straight to the h2c server ("direct") and through the
// proxy over TLS ("proxied"), side by side in one run: the difference is
// what the proxy adds per call (its TLS and HTTP/2 server, the h2c
// client), on the same machine and cores as both ends.
func BenchmarkGRPCUnary(b *testing.B) {
	be := startGRPCBackend(b)
	p := newTestProxy(b, "h2c://"+be.addr, Config{}, zerolog.Nop())
	srv := httptest.NewUnstartedServer(p)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	b.Cleanup(srv.Close)
	creds := frontCreds(srv.Certificate())
	for _, tc := range []struct {
		name string
		addr string
		opt  grpc.DialOption
	}{
		{"direct", be.addr, grpc.WithTransportCredentials(insecure.NewCredentials())},
		{"proxied", srv.Listener.Addr().String(), grpc.WithTransportCredentials(creds)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cc, err := grpc.NewClient(tc.addr, tc.opt, grpc.WithAuthority(testCName))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := testgrpc.NewTestServiceClient(cc)
			req := &testgrpc.SimpleRequest{ResponseSize: 64, Payload: &testgrpc.Payload{Body: make([]byte, 64)}}
			ctx := context.Background()
			if _, err := c.UnaryCall(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.UnaryCall(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
