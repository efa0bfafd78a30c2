package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scoregate/scoregate/certs/acmetest"
)

// TestServeACMEWaitsForDNS: a name that does not resolve yet gets no order
// (Pebble counts none) and /readyz says why; once the record exists, the
// certificate is ordered and served within seconds.
func TestServeACMEWaitsForDNS(t *testing.T) {
	dns := acmetest.StartDNS(t) // resolves nothing until Add
	ts, pebble := startACMEServe(t, acmetest.Storage(t), "--ssl-cname", "score.example.test", "--acme-dns-resolver", dns.Addr)
	waitFor(t, 10*time.Second, "/readyz to say it waits for DNS", func() bool {
		code, body := readyz(t, ts)
		return code == 503 && strings.Contains(body, "waiting for DNS: score.example.test does not resolve yet")
	})
	if dns.Queries("score.example.test") < 1 {
		t.Fatal("scoregate said it waits for DNS without asking the resolver")
	}
	if got := pebble.Orders(); got != 0 {
		t.Errorf("Pebble saw %d orders before the name resolved, want 0", got)
	}
	if got := metricValue(t, ts.reg, "scoregate_acme_waiting_for_dns", nil); got != 1 {
		t.Errorf("scoregate_acme_waiting_for_dns = %v while waiting, want 1", got)
	}
	dns.Add("score.example.test")
	added := time.Now()
	waitFor(t, 15*time.Second, "the ACME certificate once the name resolves", func() bool {
		code, _ := readyz(t, ts)
		return code == 200
	})
	if d := time.Since(added); d > 10*time.Second {
		t.Errorf("the certificate came %v after the record was added, want within 10s", d)
	}
	if got := pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want exactly 1 (none failed)", got)
	}
	if got := metricValue(t, ts.reg, "scoregate_acme_failures_total", nil); got != 0 {
		t.Errorf("scoregate_acme_failures_total = %v, want 0: no order failed at the CA", got)
	}
}

// TestServeLeafDomainFromDomainCommand: the name `scoregate domain` prints
// is the name serve uses; serve --overwrite-existing-domain restarted three
// times keeps it; a label change needs the flag and then draws one new name.
func TestServeLeafDomainFromDomainCommand(t *testing.T) {
	storage := acmetest.Storage(t)
	code, out, stderr := runCmd(t, "domain", "--leaf-domain-label", "fraud", "--region", "westeurope", "--storage", storage)
	if code != 0 {
		t.Fatalf("domain: exit %d: %s", code, stderr)
	}
	name, _, _ := strings.Cut(out, "\n")
	resolveName := func(args ...string) (string, error) {
		t.Helper()
		args = append([]string{"--acme", "--storage", storage, "--region", "westeurope", "--listen", "127.0.0.1:0"}, args...)
		c, err := parseServe(args, func(string) (string, bool) { return "", false }, io.Discard)
		if err != nil {
			return "", err
		}
		sc, err := c.resolve(io.Discard)
		return sc.CName, err
	}
	for i := range 3 {
		got, err := resolveName("--leaf-domain-label", "fraud", "--overwrite-existing-domain")
		if err != nil || got != name {
			t.Fatalf("serve start %d with --overwrite-existing-domain: %q, %v; want %q, the name domain printed", i+1, got, err, name)
		}
	}
	if _, err := resolveName("--leaf-domain-label", "churn"); err == nil || !strings.Contains(err.Error(), `"fraud"`) || !strings.Contains(err.Error(), `"churn"`) ||
		!strings.Contains(err.Error(), "--overwrite-existing-domain") {
		t.Fatalf("a label change without the flag: %v; want an error naming both labels and --overwrite-existing-domain", err)
	}
	churn, err := resolveName("--leaf-domain-label", "churn", "--overwrite-existing-domain")
	if err != nil || !strings.HasPrefix(churn, "churn") {
		t.Fatalf("a label change with the flag: %q, %v; want a churn name", churn, err)
	}
	for range 2 {
		if again, err := resolveName("--leaf-domain-label", "churn", "--overwrite-existing-domain"); err != nil || again != churn {
			t.Fatalf("restart after the label change: %q, %v; want the same %q", again, err, churn)
		}
	}
}

// TestDomainThenServeOnFreshStorageOrdersOnce is the leaf_domain_label flow
// as a user runs it on AKS: `scoregate domain` on the workstation's
// storage, then two pods started with the serve line it printed, on a fresh
// storage they share (a new Azure Files volume). Both serve the name domain
// printed; no order goes out before the name resolves (the Service
// annotation's DNS label), and then exactly one does. Had domain printed
// --leaf-domain-label, the fresh storage would have drawn another name.
func TestDomainThenServeOnFreshStorageOrdersOnce(t *testing.T) {
	out, _ := runDomainOK(t, domainArgs(t.TempDir(), "fraud", "westeurope")...)
	name := firstLine(out)
	printed := printedServeArgs(t, out)

	// Pebble's validation authority reaches only the first pod (the load
	// balancer's choice), so an order the second places is validated
	// through the challenge data in the shared storage.
	tlsLn, httpLn := listenLocal(t), listenLocal(t)
	pebble := acmetest.Start(t, acmetest.Options{
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port,
		TLSPort:  tlsLn.Addr().(*net.TCPAddr).Port,
	})
	caRoot := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(caRoot, pebble.TLSRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	dns := acmetest.StartDNS(t) // the DNS label: nothing resolves until the annotation is applied
	be := newRecordingBackend(t)
	fresh := acmetest.Storage(t)
	// What a pod adds to the printed line: its own volume as --storage,
	// the backend, the CA, and ports from the kernel for :443 and :80.
	pod := slices.Concat(printed, []string{"--storage", fresh, "--backend", be.URL,
		"--acme-ca", pebble.DirectoryURL, "--acme-ca-root", caRoot, "--acme-dns-resolver", dns.Addr,
		"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"})
	pods := []*testServer{
		startServeWith(t, map[string]net.Listener{"listen": tlsLn, "http-listen": httpLn}, pod...),
		startServeWith(t, nil, pod...),
	}
	for i, p := range pods {
		if p.cfg.CName != name {
			t.Fatalf("pod %d serves %q, want %q, the name domain printed (serve line: %q)", i, p.cfg.CName, name, printed)
		}
	}
	for i, p := range pods {
		waitFor(t, 10*time.Second, fmt.Sprintf("pod %d's /readyz to say it waits for DNS", i), func() bool {
			code, body := readyz(t, p)
			return code == 503 && strings.Contains(body, "waiting for DNS: "+name+" does not resolve yet")
		})
	}
	if got := pebble.Orders(); got != 0 {
		t.Fatalf("Pebble saw %d orders before the name resolved, want 0", got)
	}

	dns.Add(name)
	for i, p := range pods {
		waitFor(t, 30*time.Second, fmt.Sprintf("pod %d's ACME certificate once the name resolves", i), func() bool {
			code, body := readyz(t, p)
			return code == 200 && strings.Contains(body, `"source":"acme"`)
		})
	}
	if got := pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want exactly 1 for the two pods", got)
	}
	var orders float64
	var serials []string
	for i, p := range pods {
		orders += metricValue(t, p.reg, "scoregate_acme_orders_total", nil)
		resp, err := p.client(t, pebble.Roots, name, true).Post("https://"+name+"/score", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("pod %d: POST /score as %s: %v", i, name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("pod %d: POST /score = %d, want 200", i, resp.StatusCode)
		}
		leaf := resp.TLS.PeerCertificates[0]
		if !slices.Equal(leaf.DNSNames, []string{name}) {
			t.Errorf("pod %d's certificate names %q, want only %q", i, leaf.DNSNames, name)
		}
		serials = append(serials, leaf.SerialNumber.String())
	}
	if orders != 1 {
		t.Errorf("scoregate_acme_orders_total adds up to %v over the pods, want 1", orders)
	}
	if serials[0] != serials[1] {
		t.Errorf("the pods serve certificates %s and %s, want the one ordered", serials[0], serials[1])
	}
}

// printedServeArgs returns the arguments after `scoregate serve` on the
// serve line in domain's output, split as a shell would split them (domain
// quotes nothing in these tests' paths).
func printedServeArgs(t *testing.T, out string) []string {
	t.Helper()
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, "  scoregate serve ")
		if !ok {
			continue
		}
		if strings.ContainsAny(rest, `'"\`) {
			t.Fatalf("serve line %q has quoting this test does not split", line)
		}
		return strings.Fields(rest)
	}
	t.Fatalf("domain printed no serve line:\n%s", out)
	return nil
}
