package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/certstest"
)

// flaskApp is a model server as the Azure ML inference server's request
// path is: Flask under gunicorn, GET / answers "Healthy", and POST /score
// works until the test lets it finish (the file "release"), after saying
// it started (the file "started").
const flaskApp = `import os, time
from flask import Flask

app = Flask(__name__)
DIR = os.environ["SCOREGATE_TEST_DIR"]

@app.route("/", methods=["GET"])
def health():
    return "Healthy"

@app.route("/score", methods=["POST"])
def score():
    open(os.path.join(DIR, "started"), "w").close()
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(DIR, "release")) and time.time() < deadline:
        time.sleep(0.01)
    return {"score": 1}
`

// gunicorn is a running gunicorn with one sync worker (Azure ML's
// WORKER_COUNT=1) serving flaskApp.
type gunicorn struct {
	dir   string   // the app's directory, where "started" and "release" appear
	ports []string // one per bind, in order
	out   *syncBuffer
}

// startGunicorn starts Debian's gunicorn on binds listeners of its own,
// handed over as file descriptors (--bind fd://N), so that no port is
// guessed. It skips the test when gunicorn or Flask is missing (.ci/run
// installs them), and stops gunicorn by its PID when the test ends.
func startGunicorn(t *testing.T, binds int) *gunicorn {
	t.Helper()
	bin, err := exec.LookPath("gunicorn")
	if err != nil {
		t.Skip("gunicorn not installed (Debian: apt-get install gunicorn python3-flask; .ci/run does)")
	}
	if err := exec.Command("python3", "-c", "import flask").Run(); err != nil {
		t.Skipf("python3 cannot import flask (%v): apt-get install python3-flask", err)
	}
	g := &gunicorn{dir: t.TempDir(), out: &syncBuffer{}}
	if err := os.WriteFile(filepath.Join(g.dir, "app.py"), []byte(flaskApp), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--workers", "1", "--worker-class", "sync", "--timeout", "120", "--chdir", g.dir, "--access-logfile", "-")
	for i := range binds {
		f, addr := childListener(t)
		defer f.Close() // the child has its own copy once started
		_, port, _ := net.SplitHostPort(addr)
		g.ports = append(g.ports, port)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		cmd.Args = append(cmd.Args, "--bind", fmt.Sprintf("fd://%d", 3+i))
	}
	cmd.Args = append(cmd.Args, "app:app")
	cmd.Env = append(os.Environ(), "SCOREGATE_TEST_DIR="+g.dir)
	cmd.Stdout, cmd.Stderr = g.out, g.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting gunicorn: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		g.release(t)                        // a worker still scoring finishes at once
		cmd.Process.Signal(syscall.SIGQUIT) // gunicorn's quick shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("gunicorn's output:\n%s", g.out.String())
		}
	})
	for _, port := range g.ports {
		waitFor(t, 30*time.Second, "gunicorn to answer GET / on port "+port, func() bool {
			select {
			case err := <-exited:
				t.Fatalf("gunicorn exited: %v\n%s", err, g.out.String())
			default:
			}
			resp, err := http.Get("http://127.0.0.1:" + port + "/")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode == 200 && string(body) == "Healthy"
		})
	}
	return g
}

// childListener is a listening socket on 127.0.0.1, on a port the kernel
// chose, as a file to hand to a child process (exec.Cmd.ExtraFiles), and
// its address. Close f once the child has started.
func childListener(t *testing.T) (f *os.File, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err = ln.(*net.TCPListener).File()
	ln.Close() // f is a duplicate: the socket stays open and listening
	if err != nil {
		t.Fatal(err)
	}
	return f, ln.Addr().String()
}

func (g *gunicorn) started() bool {
	_, err := os.Stat(filepath.Join(g.dir, "started"))
	return err == nil
}

func (g *gunicorn) release(t *testing.T) {
	if err := os.WriteFile(filepath.Join(g.dir, "release"), nil, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Error(err)
	}
}

// TestServeGunicornOneWorkerStaysReady: Debian's gunicorn with one sync
// worker, Azure ML's default, cannot answer its health check while it
// scores, on the scoring port or on a second bind (what the inference
// server's SEPERATE_HEALTH_ENDPOINT=true adds: the same worker serves it).
// While one long request runs, /readyz stays 200 and the replica shows
// busy; the request is answered.
func TestServeGunicornOneWorkerStaysReady(t *testing.T) {
	for _, tt := range []struct {
		name       string
		binds      int
		healthPort bool // check the second bind with --health-url
	}{
		{"health check on the scoring port", 1, false},
		{"health check on a second bind, as SEPERATE_HEALTH_ENDPOINT", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := startGunicorn(t, tt.binds)
			f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
			args := []string{"--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
				"--backend", "http://127.0.0.1:" + g.ports[0], "--health-interval", "100ms"}
			if tt.healthPort {
				args = append(args, "--health-url", "http://:"+g.ports[1]+"/")
			}
			ts := startServe(t, args...)
			waitFor(t, 10*time.Second, "/readyz 200 with gunicorn checked", func() bool { code, _ := readyzJSON(t, ts); return code == 200 })

			c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", false)
			answered := make(chan string, 1)
			go func() {
				resp, err := c.Post("https://api.example.com/score", "application/json", strings.NewReader(`{"data":[[1,2,3,4]]}`))
				if err != nil {
					answered <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answered <- fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
			}()
			waitFor(t, 10*time.Second, "the scoring request to reach the Flask app", g.started)

			// Poll /readyz until three checks in a row have timed out
			// while the worker scores: every answer is 200 and shows the
			// replica busy, not down.
			busy := map[time.Time]bool{}
			polls := 0
			deadline := time.Now().Add(20 * time.Second)
			for len(busy) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("%d busy checks in %d polls within 20s, want 3", len(busy), polls)
				}
				code, rd := readyzJSON(t, ts)
				polls++
				if code != 200 {
					t.Fatalf("/readyz poll %d while the worker scores: %d %s; want 200", polls, code, rd.Reason)
				}
				if len(rd.Services) == 1 && len(rd.Services[0].Replicas) == 1 {
					if r := rd.Services[0].Replicas[0]; r.Busy {
						busy[r.CheckedAt] = true
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("%d /readyz polls while the worker scored, all 200; %d checks busy", polls, len(busy))
			g.release(t)
			select {
			case got := <-answered:
				if got != `200 {"score":1}` {
					t.Errorf("the long request: %s, want 200 {\"score\":1}", got)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the long request got no answer")
			}
			waitFor(t, 10*time.Second, "a check that passes once the worker is free", func() bool {
				code, rd := readyzJSON(t, ts)
				return code == 200 && len(rd.Services) == 1 && !rd.Services[0].Replicas[0].Busy && rd.Services[0].Replicas[0].Status == 200
			})
		})
	}
}
