package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scoregate/scoregate/metrics"
)

// streamVia runs test over every backend seam path and over an h2c
// backend, each with HTTP/1.1 and HTTP/2 clients: the proxy for the
// backend handler h, with cfg, and a client of its front.
func streamVia(t *testing.T, cfg Config, h http.HandlerFunc, test func(t *testing.T, front *httptest.Server, c *http.Client)) {
	type via struct {
		name string
		mk   func(t *testing.T) *Proxy
	}
	vias := []via{}
	for _, tr := range paths {
		vias = append(vias, via{tr.name, func(t *testing.T) *Proxy {
			return newProxyVia(t, tr.path, startBackend(t, h).URL, cfg, testLog(t))
		}})
	}
	vias = append(vias, via{"h2c", func(t *testing.T) *Proxy {
		b := httptest.NewUnstartedServer(h)
		b.Config.Protocols = new(http.Protocols)
		b.Config.Protocols.SetUnencryptedHTTP2(true)
		b.Start()
		t.Cleanup(b.Close)
		return newTestProxy(t, "h2c://"+b.Listener.Addr().String(), cfg, testLog(t))
	}})
	for _, v := range vias {
		for _, pr := range protos {
			t.Run(v.name+"/"+pr.name, func(t *testing.T) {
				front := startFront(t, v.mk(t))
				test(t, front, clientFor(t, front, pr.major))
			})
		}
	}
}

// TestStreamEventsArriveAtOnce: each event of a token stream reaches the
// client before the backend writes the next (the backend waits for the
// client's word), uncompressed although the client offers gzip, and the
// stream outlives an upstream timeout far shorter than itself.
func TestStreamEventsArriveAtOnce(t *testing.T) {
	const events = 5
	next := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for i := range events {
			fmt.Fprintf(w, "data: {\"token\":%d}\n\n", i)
			rc.Flush()
			if i == events-1 {
				return
			}
			// The model thinks past the upstream timeout between two
			// tokens, and writes the next once the client has this one.
			<-time.After(60 * time.Millisecond)
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}
	streamVia(t, Config{UpstreamTimeout: 50 * time.Millisecond}, h, func(t *testing.T, front *httptest.Server, c *http.Client) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		req := newRequest(t, ctx, front, http.MethodPost, "/v1/chat/completions", testCName, strings.NewReader(`{"stream":true}`))
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || resp.Uncompressed {
			t.Errorf("Content-Encoding %q (uncompressed by the client: %v): a stream must not be compressed", ce, resp.Uncompressed)
		}
		br := bufio.NewReader(resp.Body)
		for i := range events {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			if want := fmt.Sprintf("data: {\"token\":%d}\n", i); line != want {
				t.Fatalf("event %d: %q, want %q", i, line, want)
			}
			br.ReadString('\n') // the blank line that ends the event
			if i < events-1 {
				next <- struct{}{}
			}
		}
		if _, err := br.ReadByte(); err == nil {
			t.Error("more after the last event")
		}
	})
}

// TestStreamIdleTimeoutEndsAStream: a stream whose backend goes quiet for
// longer than StreamIdleTimeout is ended for the client (an error, not a
// clean end) and for the backend (its request context ends: the
// connection or HTTP/2 stream closed).
func TestStreamIdleTimeoutEndsAStream(t *testing.T) {
	backendDone := make(chan struct{}, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // quiet until scoregate gives up
		backendDone <- struct{}{}
	}
	streamVia(t, Config{StreamIdleTimeout: 100 * time.Millisecond}, h, func(t *testing.T, front *httptest.Server, c *http.Client) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		resp, err := c.Do(newRequest(t, ctx, front, http.MethodGet, "/events", testCName, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
			t.Fatalf("first event: %q %v", line, err)
		}
		br.ReadString('\n')
		_, err = br.ReadByte()
		if err == nil {
			t.Fatal("the stream went on after the backend went quiet")
		}
		if ctx.Err() != nil {
			t.Fatalf("the stream was not ended within %v: %v", waitLimit, err)
		}
		waitSignal(t, backendDone, "the backend's request to end")
	})
}

// TestStreamIdleIsCounted: an idle stream ended is scoregate_streams_cut_total{cause="idle"}.
func TestStreamIdleIsCounted(t *testing.T) {
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	m := metrics.New(prometheus.NewRegistry())
	p, err := New(Config{CName: testCName, Backends: urls(t, b.URL), StreamIdleTimeout: 50 * time.Millisecond}, testLog(t), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	front := startFront(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := clientFor(t, front, 2).Do(newRequest(t, ctx, front, http.MethodGet, "/events", testCName, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the idle stream ended cleanly; want it aborted")
	}
	waitUntil(t, "scoregate_streams_cut_total{cause=idle} 1", func() bool { return m.StreamsCut(metrics.StreamCutIdle) == 1 })
	if n := m.StreamsCut(metrics.StreamCutClient); n != 0 {
		t.Errorf("cause client counted %v, want 0", n)
	}
}

// TestStreamClientGoneEndsTheBackendRequest: a client that leaves in the
// middle of a token stream ends the backend's request (so the model can
// stop), and is counted as a cut stream, cause client; an idle stream is
// counted with cause idle.
func TestStreamClientGoneEndsTheBackendRequest(t *testing.T) {
	for _, tr := range paths {
		for _, pr := range protos {
			t.Run(tr.name+"/"+pr.name, func(t *testing.T) {
				backendDone := make(chan struct{}, 1)
				b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					fmt.Fprint(w, "data: first\n\n")
					http.NewResponseController(w).Flush()
					<-r.Context().Done() // generating until the client leaves
					backendDone <- struct{}{}
				})
				m := metrics.New(prometheus.NewRegistry())
				p, err := New(Config{CName: testCName, Backends: urls(t, b.URL)}, testLog(t), m)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(p.Close)
				setPath(t, p, tr.path)
				front := startFront(t, p)
				c := clientFor(t, front, pr.major)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				resp, err := c.Do(newRequest(t, ctx, front, http.MethodPost, "/v1/chat/completions", testCName, strings.NewReader(`{}`)))
				if err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(resp.Body)
				if line, err := br.ReadString('\n'); err != nil || line != "data: first\n" {
					t.Fatalf("first event: %q %v", line, err)
				}
				cancel() // the client goes away
				resp.Body.Close()
				c.Transport.(*http.Transport).CloseIdleConnections()
				waitSignal(t, backendDone, "the backend's request to end after the client left")
				waitUntil(t, "scoregate_streams_cut_total{cause=client} 1", func() bool { return m.StreamsCut(metrics.StreamCutClient) == 1 })
			})
		}
	}
}
