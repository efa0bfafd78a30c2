package main

import (
	"bytes"
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

// pyModel is the model both Python servers run, as an ASGI app (FastAPI,
// for uvicorn) and a WSGI app (Flask, for waitress): GET / answers 503
// until the model has loaded (the file "loaded" appears, as a slow init()
// ends), then "Healthy"; POST /score answers the size of its body; POST
// /fail raises, after writing one byte to the file "failed" per call.
const pyModel = `import os, threading, time
DIR = os.environ["SCOREGATE_TEST_DIR"]
loaded = threading.Event()
def load():
    while not os.path.exists(os.path.join(DIR, "loaded")):
        time.sleep(0.01)
    loaded.set()
threading.Thread(target=load, daemon=True).start()
def failed():
    with open(os.path.join(DIR, "failed"), "a") as f:
        f.write("x")
    raise RuntimeError("model raised")
`

const asgiApp = pyModel + `
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
app = FastAPI()

@app.get("/")
def health():
    if not loaded.is_set():
        return PlainTextResponse("loading", status_code=503)
    return PlainTextResponse("Healthy")

@app.post("/score")
async def score(request: Request):
    return {"bytes": len(await request.body())}

@app.post("/fail")
def fail():
    failed()
`

const wsgiApp = pyModel + `
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["GET"])
def health():
    if not loaded.is_set():
        return "loading", 503
    return "Healthy"

@app.route("/score", methods=["POST"])
def score():
    return {"bytes": len(request.get_data())}

@app.route("/fail", methods=["POST"])
def fail():
    failed()
`

// pyLauncher serves the app on the listening socket it inherits as fd 3,
// so that no port is guessed; keep-alive timeouts are short (1 s), so that
// the server closes idle connections between requests.
const pyLauncher = `import os, socket, sys
sys.path.insert(0, os.environ["SCOREGATE_TEST_DIR"])
if sys.argv[1] == "uvicorn":
    import uvicorn
    uvicorn.run("asgi:app", fd=3, log_level="warning", timeout_keep_alive=1)
else:
    import waitress, wsgi
    waitress.serve(wsgi.app, sockets=[socket.socket(fileno=3)], channel_timeout=1, cleanup_interval=1, max_request_body_size=64 << 20)
`

// startPyServer starts Debian's uvicorn (FastAPI) or waitress (Flask) on a
// listener of the test's own and returns its address and directory. It
// skips when the packages are missing (.ci/run installs them) and stops
// the server by its PID.
func startPyServer(t *testing.T, kind string) (addr, dir string) {
	t.Helper()
	mod := map[string]string{"uvicorn": "uvicorn, fastapi", "waitress": "waitress, flask"}[kind]
	// Debian's python3, whose packages apt installs: the python3 on PATH
	// may be another (pyenv's), without them.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import "+mod).Run(); err != nil {
		t.Skipf("python3 cannot import %s (%v): apt-get install python3-uvicorn python3-fastapi python3-waitress python3-flask; .ci/run does", mod, err)
	}
	dir = t.TempDir()
	for name, src := range map[string]string{"asgi.py": asgiApp, "wsgi.py": wsgiApp, "launch.py": pyLauncher} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, addr := childListener(t)
	defer f.Close() // the child has its own copy once started
	out := &syncBuffer{}
	cmd := exec.Command(py, filepath.Join(dir, "launch.py"), kind)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "SCOREGATE_TEST_DIR="+dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", kind, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", kind, out.String())
		}
	})
	waitFor(t, 30*time.Second, kind+" to answer GET /", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s", kind, err, out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	return addr, dir
}

// TestServePythonModelServers: scoregate in front of uvicorn with FastAPI
// and waitress with Flask, the servers models really run on: /readyz not
// ready while the model loads, then ready; 10 MB bodies; a model that
// raises answers 500 and is called once; requests after an idle gap
// longer than the server's keep-alive, which closed the connection
// meanwhile, all succeed.
func TestServePythonModelServers(t *testing.T) {
	for _, kind := range []string{"uvicorn", "waitress"} {
		t.Run(kind, func(t *testing.T) {
			addr, dir := startPyServer(t, kind)
			f := certstest.NewFiles(t, t.TempDir(), "api.example.com")
			ts := startServe(t, "--ssl-cert-pem-file", f.CertFile, "--ssl-key-pem-file", f.KeyFile, "--ssl-cname", "api.example.com",
				// Checks less often than the server's 1 s keep-alive,
				// so that its connections go idle and are closed.
				"--backend", "http://"+addr, "--health-interval", "2s")
			waitFor(t, 10*time.Second, "/readyz to say the model is loading (503 from GET /)", func() bool {
				_, rd := readyzJSON(t, ts)
				return len(rd.Services) == 1 && len(rd.Services[0].Replicas) == 1 && rd.Services[0].Replicas[0].Status == http.StatusServiceUnavailable && !rd.Ready
			})
			if err := os.WriteFile(filepath.Join(dir, "loaded"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "/readyz 200 once the model has loaded", func() bool { code, _ := readyzJSON(t, ts); return code == http.StatusOK })

			for _, h2 := range []bool{false, true} {
				c := ts.client(t, poolOf(t, f.CAFile), "api.example.com", h2)
				post := func(path string, body []byte) (int, string) {
					t.Helper()
					resp, err := c.Post("https://api.example.com"+path, "application/json", bytes.NewReader(body))
					if err != nil {
						t.Fatalf("POST %s: %v", path, err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					return resp.StatusCode, string(b)
				}
				const big = 10 << 20
				if code, body := post("/score", bytes.Repeat([]byte{'1'}, big)); code != 200 || !strings.Contains(body, fmt.Sprintf(`"bytes":%d`, big)) {
					t.Errorf("h2 %v: 10 MB body: %d %.200s, want 200 with its size", h2, code, body)
				}
				before := fileSize(t, filepath.Join(dir, "failed"))
				if code, _ := post("/fail", []byte(`{}`)); code != http.StatusInternalServerError {
					t.Errorf("h2 %v: a model that raises: %d, want its 500", h2, code)
				}
				if n := fileSize(t, filepath.Join(dir, "failed")) - before; n != 1 {
					t.Errorf("h2 %v: the raising model was called %d times, want once", h2, n)
				}
				// The server closes an idle keep-alive connection after
				// 1 s; the next request must not fail on it. Wait until
				// that connection is gone on the server's side.
				waitFor(t, 10*time.Second, kind+" to close its idle keep-alive connections", func() bool { return !serverHasConn(t, addr) })
				for i := range 3 {
					if code, body := post("/score", []byte(`{"data":[[1,2,3,4]]}`)); code != 200 {
						t.Errorf("h2 %v: request %d after the idle gap: %d %s", h2, i, code, body)
					}
				}
			}
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// serverHasConn reports whether the kernel holds an established TCP
// connection whose local end is addr (the server's side), from
// /proc/net/tcp.
func serverHasConn(t *testing.T, addr string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skipf("reading /proc/net/tcp: %v", err)
	}
	_, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	local := fmt.Sprintf("0100007F:%04X", p)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) > 3 && fields[1] == local && fields[3] == "01" { // 01: ESTABLISHED
			return true
		}
	}
	return false
}
