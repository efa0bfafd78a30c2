package proxy

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scoregate/scoregate/metrics"
)

// TestHealthBusyRule: a check that times out counts as busy (ready, in
// rotation) only while the replica works, and has answered within the
// upstream timeout; every other failure is down.
func TestHealthBusyRule(t *testing.T) {
	const busyFor = time.Minute
	for _, tt := range []struct {
		name        string
		outstanding int           // requests on the replica at the check
		answered    int           // requests answered since the check before
		lastAnswer  time.Duration // if > 0, the replica last answered this long ago; < 0: never
		timedOut    bool
		wantReady   bool
		wantBusy    bool
	}{
		{name: "timeout while a request runs", outstanding: 1, timedOut: true, wantReady: true, wantBusy: true},
		{name: "timeout after a request answered since the last check", answered: 1, timedOut: true, wantReady: true, wantBusy: true},
		{name: "timeout while idle", timedOut: true},
		{name: "timeout while a request runs on a replica that never answered", outstanding: 1, lastAnswer: -1, timedOut: true},
		{name: "timeout with nothing answered for longer than the upstream timeout", outstanding: 1, lastAnswer: 2 * busyFor, timedOut: true},
		{name: "timeout with the last answer just within the upstream timeout", outstanding: 1, lastAnswer: busyFor - time.Second, timedOut: true, wantReady: true, wantBusy: true},
		{name: "refused or 5xx while a request runs", outstanding: 1},
		{name: "refused or 5xx after a request answered", answered: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnitPool(t, 4, 8, time.Second, addrA)
			u.busyFor = busyFor
			r := u.rep(t, addrA)
			u.setCheck(r, metrics.BackendInfo{Ready: true, Status: 200, CheckedAt: time.Now()}, false)
			for range tt.answered {
				u.release(u.take(t, nil), outcomeAnswered)
			}
			var held []*replica
			for range tt.outstanding {
				held = append(held, u.take(t, nil))
			}
			defer func() {
				for _, h := range held {
					u.release(h, outcomeAnswered)
				}
			}()
			u.mu.Lock()
			switch {
			case tt.lastAnswer < 0:
				r.lastAnswer = time.Time{}
			case tt.lastAnswer > 0:
				r.lastAnswer = time.Now().Add(-tt.lastAnswer)
			}
			u.mu.Unlock()

			rec, _, _ := u.setCheck(r, metrics.BackendInfo{Error: "GET /: no answer", CheckedAt: time.Now()}, tt.timedOut)
			if rec.Ready != tt.wantReady || rec.Busy != tt.wantBusy {
				t.Errorf("check recorded ready %v, busy %v; want ready %v, busy %v", rec.Ready, rec.Busy, tt.wantReady, tt.wantBusy)
			}
			info := replicaOf(t, u, r)
			if info.Ready != tt.wantReady || info.Busy != tt.wantBusy {
				t.Errorf("Health shows ready %v, busy %v; want ready %v, busy %v", info.Ready, info.Busy, tt.wantReady, tt.wantBusy)
			}
			u.mu.Lock()
			usable := r.usableLocked()
			u.mu.Unlock()
			if usable != tt.wantReady {
				t.Errorf("in rotation = %v, want %v", usable, tt.wantReady)
			}
		})
	}
}

// replicaOf returns r's last check as the pool keeps it.
func replicaOf(t *testing.T, u *unitPool, r *replica) metrics.BackendInfo {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	return r.check
}

// TestHealthBusyThenIdle: busy lasts while the replica works; the first
// timeout after it has gone idle (nothing outstanding, nothing answered
// since the check before) is down.
func TestHealthBusyThenIdle(t *testing.T) {
	u := newUnitPool(t, 4, 8, time.Second, addrA)
	u.busyFor = time.Minute
	r := u.rep(t, addrA)
	check := func(timedOut bool) metrics.BackendInfo {
		rec, _, _ := u.setCheck(r, metrics.BackendInfo{Ready: !timedOut, CheckedAt: time.Now()}, timedOut)
		return rec
	}
	check(false)
	held := u.take(t, nil)
	for i := range 3 {
		if rec := check(true); !rec.Ready || !rec.Busy {
			t.Fatalf("timeout %d while a request runs: ready %v, busy %v; want busy", i+1, rec.Ready, rec.Busy)
		}
	}
	u.release(held, outcomeAnswered)
	if rec := check(true); !rec.Ready || !rec.Busy {
		t.Errorf("timeout after the request was answered: ready %v, busy %v; want busy", rec.Ready, rec.Busy)
	}
	if rec := check(true); rec.Ready || rec.Busy {
		t.Errorf("the next timeout, idle: ready %v, busy %v; want down", rec.Ready, rec.Busy)
	}
}

// TestHealthBusyKeepsEjection: a busy check does not bring back a replica
// ejected for refused connections; only a check that passes does.
func TestHealthBusyKeepsEjection(t *testing.T) {
	u := newUnitPool(t, 4, 8, time.Second, addrA, addrB)
	u.busyFor = time.Minute
	a := u.rep(t, addrA)
	u.setCheck(a, metrics.BackendInfo{Ready: true, CheckedAt: time.Now()}, false)
	held := u.take(t, u.rep(t, addrB)) // A, outstanding
	defer u.release(held, outcomeAnswered)
	for range ejectAfter {
		u.failOn(t, a, u.rep(t, addrB), outcomeConnFailed)
	}
	if !u.ejected(a) {
		t.Fatal("A not ejected after the connection failures")
	}
	if rec, _, _ := u.setCheck(a, metrics.BackendInfo{CheckedAt: time.Now()}, true); !rec.Busy {
		t.Fatalf("timeout with a request outstanding: busy %v, want true", rec.Busy)
	}
	if !u.ejected(a) {
		t.Error("a busy check brought back an ejected replica")
	}
	u.setCheck(a, metrics.BackendInfo{Ready: true, CheckedAt: time.Now()}, false)
	if u.ejected(a) {
		t.Error("a passing check did not bring the replica back")
	}
}

// oneWorker is a backend that serves one request at a time, as gunicorn's
// sync worker with WORKER_COUNT=1 does: while /score runs (until the gate
// opens), the health check waits too. With hang set, the health check
// never answers.
type oneWorker struct {
	slot    chan struct{}
	scoreIn chan struct{}
	gate    *gate
	hang    atomic.Bool
	checks  atomic.Int64
}

func newOneWorker() *oneWorker {
	return &oneWorker{slot: make(chan struct{}, 1), scoreIn: make(chan struct{}, 1), gate: newGate()}
}

func (o *oneWorker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case o.slot <- struct{}{}:
	case <-r.Context().Done():
		return // the client gave up while the worker was busy
	}
	defer func() { <-o.slot }()
	if scoreOnly(r) {
		o.scoreIn <- struct{}{}
		o.gate.wait(r)
		io.WriteString(w, `{"score":1}`)
		return
	}
	o.checks.Add(1)
	if o.hang.Load() {
		<-r.Context().Done()
		return
	}
	io.WriteString(w, "Healthy")
}

// TestHealthBusyOneWorkerBackend: a backend that cannot answer its health
// check while it scores stays ready, in rotation and marked busy for as
// long as the request runs; once idle, a check that times out is down.
func TestHealthBusyOneWorkerBackend(t *testing.T) { forTransports(t, testHealthBusyOneWorkerBackend) }

func testHealthBusyOneWorkerBackend(t *testing.T, path seamPath) {
	be := newOneWorker()
	srv := startBackend(t, be.ServeHTTP)
	addr := srv.Listener.Addr().String()
	logs := newLogSink()
	p, err := New(Config{CName: testCName, Backends: urls(t, srv.URL), ProbeInterval: 50 * time.Millisecond}, logs.logger(), metrics.New(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	setPath(t, p, path)
	runProxy(t, p)
	front := startFront(t, p)
	c := clientFor(t, front, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer be.gate.open()

	waitUntil(t, "a check that passes", func() bool { info, _ := replicaInfo(p, addr); return info.Ready && !info.Busy })
	done := make(chan answer, 1)
	req := newRequest(t, t.Context(), front, "POST", "/score", testCName, strings.NewReader(`{"data":[[1]]}`))
	wg.Go(func() { done <- send(c, req) })
	select {
	case <-be.scoreIn:
	case <-time.After(waitLimit):
		t.Fatal("the request never reached the model")
	}
	// Three checks in a row time out while the model scores: each is
	// busy, and the replica stays ready.
	seen := map[time.Time]bool{}
	deadline := time.Now().Add(waitLimit)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d busy checks within %v, want 3", len(seen), waitLimit)
		}
		info, _ := replicaInfo(p, addr)
		if !info.Ready {
			t.Fatalf("while the model scores, the replica's check is %+v; want ready and busy", info)
		}
		if info.Busy {
			seen[info.CheckedAt] = true
			if !strings.Contains(info.Error, "no answer within") {
				t.Errorf("busy check error = %q, want the timeout", info.Error)
			}
		}
		if !p.ready() {
			t.Fatal("the proxy is not ready while its one replica is busy")
		}
		time.Sleep(time.Millisecond)
	}
	be.gate.open()
	if a := await(t, done, "the long request"); a.status != 200 {
		t.Fatalf("the long request: %d %q, want 200", a.status, a.body)
	}
	waitUntil(t, "a check that passes after the request", func() bool { info, _ := replicaInfo(p, addr); return info.Ready && !info.Busy })
	for _, l := range logs.all() {
		if l["message"] == "backend health changed" && l["ready"] == false {
			t.Errorf("logged while busy: %v", l)
		}
	}

	// Idle now, the model stops answering its check: down.
	be.hang.Store(true)
	waitUntil(t, "a timed-out check with nothing outstanding to count as down", func() bool {
		info, _ := replicaInfo(p, addr)
		return !info.Ready && !info.Busy && strings.Contains(info.Error, "no answer within")
	})
	be.hang.Store(false)
}

// TestHealthURLOtherPort: with a health URL, each replica is checked at
// its own address on the URL's port and path (a name standing for two
// addresses is two replicas, checked each on its own); the replicas'
// scoring port is not asked GET /.
func TestHealthURLOtherPort(t *testing.T) {
	score2, score3, port := listenPair(t)
	health2, health3, hport := listenPair(t)
	var scoreChecks atomic.Int64
	scorer := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			scoreChecks.Add(1)
		}
		io.WriteString(w, "ok")
	}
	startBackendAt(t, score2, scorer)
	startBackendAt(t, score3, scorer)
	type seen struct {
		checks atomic.Int64
		down   atomic.Bool
		mu     sync.Mutex
		target string // the last request's path and query
		host   string // its Host header
	}
	healthAt := func(s *seen) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s.checks.Add(1)
			s.mu.Lock()
			s.target, s.host = r.URL.RequestURI(), r.Host
			s.mu.Unlock()
			if s.down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			io.WriteString(w, "Healthy")
		}
	}
	var h2, h3 seen
	startBackendAt(t, health2, healthAt(&h2))
	startBackendAt(t, health3, healthAt(&h3))
	d := startTestDNS(t, "model.test")
	d.set("127.0.0.2", "127.0.0.3")

	for _, form := range []string{"http://model.test:" + hport + "/healthz?probe=1", "http://:" + hport + "/healthz?probe=1"} {
		t.Run(form, func(t *testing.T) {
			h2.down.Store(false)
			h3.down.Store(false)
			p, _, _ := newPoolProxy(t, pathDirect, Config{
				Backends:      urls(t, "http://model.test:"+port),
				HealthURL:     mustParse(t, form),
				Resolver:      d.resolver(),
				ProbeInterval: 20 * time.Millisecond,
			})
			runProxy(t, p)
			before2, before3 := h2.checks.Load(), h3.checks.Load()
			waitUntil(t, "both replicas checked on the health port, and ready", func() bool {
				i2, _ := replicaInfo(p, score2.Addr().String())
				i3, _ := replicaInfo(p, score3.Addr().String())
				return h2.checks.Load() > before2 && h3.checks.Load() > before3 && i2.Ready && i3.Ready
			})
			h2.mu.Lock()
			target, host := h2.target, h2.host
			h2.mu.Unlock()
			if target != "/healthz?probe=1" || host != "model.test:"+hport {
				t.Errorf("the check asked %q with Host %q, want /healthz?probe=1 with Host model.test:%s", target, host, hport)
			}
			h3.down.Store(true)
			waitUntil(t, "the replica whose health port answers 503 to be down", func() bool {
				info, _ := replicaInfo(p, score3.Addr().String())
				return !info.Ready && info.Status == 503
			})
			if info, _ := replicaInfo(p, score2.Addr().String()); !info.Ready {
				t.Errorf("the other replica: %+v, want ready", info)
			}
			if info, _ := replicaInfo(p, score3.Addr().String()); !strings.Contains(info.Error, "GET /healthz?probe=1 answered 503") {
				t.Errorf("down replica's error = %q, want the health URL's answer", info.Error)
			}
		})
	}
	if n := scoreChecks.Load(); n != 0 {
		t.Errorf("the scoring port was asked GET / %d times, want none with a health URL", n)
	}
}

// TestHealthURLChecked: New refuses a health URL that cannot be asked of
// the service's replicas, naming the field.
func TestHealthURLChecked(t *testing.T) {
	backends := func(s ...string) []*url.URL { return urls(t, s...) }
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"another host", Config{Backends: backends("http://10.0.0.1:5001"), HealthURL: mustParse(t, "http://10.0.0.2:5000/")},
			`proxy: HealthURL "http://10.0.0.2:5000/": host "10.0.0.2" is none of the service's backends`},
		{"not http", Config{Backends: backends("http://10.0.0.1:5001"), HealthURL: mustParse(t, "tcp://10.0.0.1:5000")},
			`want an http:// or https:// URL`},
		{"port zero", Config{Backends: backends("http://10.0.0.1:5001"), HealthURL: mustParse(t, "http://10.0.0.1:0/")},
			`port "0": want 1 to 65535`},
		{"no default service", Config{Services: map[string][]*url.URL{"a": backends("http://10.0.0.1:5001")}, HealthURL: mustParse(t, "http://:5000/")},
			`proxy: HealthURL is for Backends, and there are none`},
		{"unknown service", Config{Services: map[string][]*url.URL{"a": backends("http://10.0.0.1:5001")}, ServiceHealthURLs: map[string]*url.URL{"b": mustParse(t, "http://:5000/")}},
			`proxy: ServiceHealthURLs["b"]: no such service`},
		{"service's other host", Config{Services: map[string][]*url.URL{"a": backends("http://10.0.0.1:5001")}, ServiceHealthURLs: map[string]*url.URL{"a": mustParse(t, "http://10.0.0.9:5000/")}},
			`proxy: ServiceHealthURLs["a"] "http://10.0.0.9:5000/": host "10.0.0.9"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CName = testCName
			_, err := New(tt.cfg, testLog(t), nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	for _, ok := range []string{"http://10.0.0.1:5000/", "http://:5000/", "https://10.0.0.1:5443/health", "http://10.0.0.1/"} {
		if _, err := New(Config{CName: testCName, Backends: backends("http://10.0.0.1:5001"), HealthURL: mustParse(t, ok)}, testLog(t), nil); err != nil {
			t.Errorf("HealthURL %s: %v, want accepted", ok, err)
		}
	}
}
