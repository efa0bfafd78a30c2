package certs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/scoregate/scoregate/certs/acmetest"
)

// acmeWaitingForDNS is the gauge that is 1 while the first order waits for
// the name to resolve.
const acmeWaitingForDNS = "scoregate_acme_waiting_for_dns"

// Fast DNS checks for tests: the first wait is 20ms, doubling up to 100ms.
const (
	testDNSCheckInterval    = 20 * time.Millisecond
	testDNSCheckMaxInterval = 100 * time.Millisecond
)

// The log line of the wait for DNS (logged at once, then every 5 minutes).
const dnsWaitLog = `"message":"waiting for DNS: no certificate is ordered until the name resolves`

// gauge returns the value of the unlabelled gauge name in reg.
func gauge(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		if f.GetType() != dto.MetricType_GAUGE || len(f.GetMetric()) != 1 {
			t.Fatalf("%s is a %s with %d series, not one gauge", name, f.GetType(), len(f.GetMetric()))
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

// TestACMEWaitsForDNS: while the name does not resolve, no order is
// placed and Status and the metric say why; once the record is added, the
// certificate is ordered at once (not at certmagic's retry a minute later)
// and served within seconds.
func TestACMEWaitsForDNS(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "later.scoregate.test"
	dns := acmetest.StartDNS(t)
	cfg := e.config(name, acmetest.Storage(t))
	cfg.DNSResolver = dns.Addr
	cfg.DNSCheckInterval, cfg.DNSCheckMaxInterval = testDNSCheckInterval, testDNSCheckMaxInterval
	a := e.newACME(t, cfg)
	e.use(a)
	start(t, a)

	// Two lookups: the wait has looped at least once, so an order placed
	// right after the first check would show.
	waitFor(t, 5*time.Second, "two DNS checks and the wait reported", func() bool {
		return dns.Queries(name) >= 2 && gauge(t, a.reg, acmeWaitingForDNS) == 1 &&
			strings.HasPrefix(a.Status().Pending, "waiting for DNS")
	})
	if got := e.pebble.Orders(); got != 0 {
		t.Errorf("while %s does not resolve: Pebble saw %d orders, want 0", name, got)
	}
	st := a.Status()
	if want := "waiting for DNS: " + name + " does not resolve yet: "; !strings.HasPrefix(st.Pending, want) ||
		!strings.Contains(st.Pending, "no such host") || !strings.Contains(st.Pending, dns.Addr) {
		t.Errorf("Status().Pending = %q, want it to start %q and name the lookup error (no such host) and the resolver %s", st.Pending, want, dns.Addr)
	}
	if st.Leaf != nil || st.LastError != nil {
		t.Errorf("Status() = %+v, want no leaf and no failed order", st)
	}
	if got := strings.Count(e.out.String(), dnsWaitLog); got != 1 {
		t.Errorf("the wait for DNS was logged %d times, want once (again only after 5 minutes)", got)
	}

	dns.Add(name)
	added := time.Now()
	waitFor(t, 10*time.Second, "the certificate served once the name resolves", func() bool {
		_, err := e.handshake(name) // verified against Pebble's root
		return err == nil
	})
	t.Logf("certificate served %v after the record was added", time.Since(added).Round(time.Millisecond))
	if got := gauge(t, a.reg, acmeWaitingForDNS); got != 0 {
		t.Errorf("%s = %v after the certificate came, want 0", acmeWaitingForDNS, got)
	}
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
	if got, want := a.counts(t), (acmeCounts{Orders: 1}); got != want {
		t.Errorf("ACME counters = %+v, want %+v (no failed order)", got, want)
	}
	if !strings.Contains(e.out.String(), `"message":"the name resolves; ordering a certificate"`) {
		t.Errorf("no log line for the name resolving in:\n%s", e.out)
	}
}

// TestACMEResolvableNameOrdersAtOnce: a name that resolves is ordered on
// the first check, with the default 2 s backoff never entered.
func TestACMEResolvableNameOrdersAtOnce(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "now.scoregate.test"
	dns := acmetest.StartDNS(t)
	dns.Add(name)
	cfg := e.config(name, acmetest.Storage(t))
	cfg.DNSResolver = dns.Addr
	a := e.newACME(t, cfg)
	e.use(a)
	start(t, a)
	waitReady(t, a)
	if got := dns.Queries(name); got != 1 {
		t.Errorf("the resolver was asked %d times, want once", got)
	}
	if strings.Contains(e.out.String(), dnsWaitLog) {
		t.Errorf("a resolvable name was logged as waiting for DNS:\n%s", e.out)
	}
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
}

// TestACMEStoredCertificateSkipsDNS: a certificate in storage is loaded
// without asking DNS, even when the name does not resolve.
func TestACMEStoredCertificateSkipsDNS(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "stored.scoregate.test"
	storage := acmetest.Storage(t)
	first := e.newACME(t, e.config(name, storage))
	e.use(first)
	start(t, first)
	leaf := waitReady(t, first)
	first.Stop()

	dns := acmetest.StartDNS(t) // resolves nothing
	cfg := e.config(name, storage)
	cfg.DNSResolver = dns.Addr
	second := e.newACME(t, cfg)
	e.use(second)
	start(t, second)
	if again := waitReady(t, second); again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("serial %x, want the stored %x", again.SerialNumber, leaf.SerialNumber)
	}
	if _, err := e.handshake(name); err != nil {
		t.Errorf("handshake with the stored certificate: %v", err)
	}
	if got := dns.Queries(name); got != 0 {
		t.Errorf("the resolver was asked %d times for a stored certificate, want 0", got)
	}
	if got := gauge(t, second.reg, acmeWaitingForDNS); got != 0 {
		t.Errorf("%s = %v, want 0", acmeWaitingForDNS, got)
	}
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
}

// TestACMEWaitingInstanceLoadsSiblingsCertificate: an instance waiting for
// DNS loads the certificate that another instance sharing its storage
// obtained meanwhile, and orders nothing itself.
func TestACMEWaitingInstanceLoadsSiblingsCertificate(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "sibling.scoregate.test"
	storage := acmetest.Storage(t)
	dns := acmetest.StartDNS(t) // resolves nothing
	cfg := e.config(name, storage)
	cfg.DNSResolver = dns.Addr
	cfg.DNSCheckInterval, cfg.DNSCheckMaxInterval = testDNSCheckInterval, testDNSCheckMaxInterval
	waiting := e.newACME(t, cfg)
	start(t, waiting)
	waitFor(t, 5*time.Second, "the wait for DNS", func() bool { return gauge(t, waiting.reg, acmeWaitingForDNS) == 1 })

	sibling := e.newACME(t, e.config(name, storage)) // resolves through Pebble's DNS
	e.use(sibling)
	start(t, sibling)
	leaf := waitReady(t, sibling)
	if got := waitReady(t, waiting); got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("the waiting instance serves serial %x, want the sibling's %x", got.SerialNumber, leaf.SerialNumber)
	}
	if got := gauge(t, waiting.reg, acmeWaitingForDNS); got != 0 {
		t.Errorf("%s = %v, want 0", acmeWaitingForDNS, got)
	}
	if got := waiting.counts(t); got != (acmeCounts{}) {
		t.Errorf("the waiting instance's ACME counters = %+v, want all zero", got)
	}
	if got := e.pebble.Orders(); got != 1 {
		t.Errorf("Pebble saw %d orders, want 1", got)
	}
}

// TestACMEDNSResolverUnreachable: a resolver that cannot be reached is a
// lookup error like any other, named in the pending reason.
func TestACMEDNSResolverUnreachable(t *testing.T) {
	e := newACMEEnv(t, 0)
	const name = "nodns.scoregate.test"
	closed := listenLocal(t)
	addr := closed.Addr().String()
	closed.Close()
	cfg := e.config(name, acmetest.Storage(t))
	cfg.DNSResolver = addr
	cfg.DNSCheckInterval, cfg.DNSCheckMaxInterval = testDNSCheckInterval, testDNSCheckMaxInterval
	a := e.newACME(t, cfg)
	start(t, a)
	waitFor(t, 5*time.Second, "the wait for DNS", func() bool { return gauge(t, a.reg, acmeWaitingForDNS) == 1 })
	if st := a.Status(); !strings.HasPrefix(st.Pending, "waiting for DNS: "+name) || !strings.Contains(st.Pending, addr) ||
		!strings.Contains(st.Pending, "connection refused") {
		t.Errorf("Status().Pending = %q, want the wait for DNS naming %s and the connection error", st.Pending, addr)
	}
	if got := e.pebble.Orders(); got != 0 {
		t.Errorf("Pebble saw %d orders, want 0", got)
	}
}

// TestACMEStopEndsTheWaitForDNS: Stop returns while the name is still
// unresolved, and the metric goes back to 0.
func TestACMEStopEndsTheWaitForDNS(t *testing.T) {
	e := newACMEEnv(t, 0)
	cfg := e.config("never.scoregate.test", acmetest.Storage(t))
	cfg.DNSResolver = acmetest.StartDNS(t).Addr
	a := e.newACME(t, cfg)
	start(t, a)
	waitFor(t, 5*time.Second, "the wait for DNS", func() bool { return gauge(t, a.reg, acmeWaitingForDNS) == 1 })
	stopping := time.Now()
	a.Stop()
	// The default 2 s wait is under way; Stop must not sit it out.
	if d := time.Since(stopping); d > time.Second {
		t.Errorf("Stop took %v while waiting for DNS, want it to cancel the wait", d)
	}
	if got := gauge(t, a.reg, acmeWaitingForDNS); got != 0 {
		t.Errorf("%s = %v after Stop, want 0", acmeWaitingForDNS, got)
	}
}
