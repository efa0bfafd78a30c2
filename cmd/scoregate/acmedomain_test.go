package main

import (
	"io"
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
