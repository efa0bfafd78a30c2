package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"time"

	"github.com/caddyserver/certmagic"
)

// The wait for DNS before the first order (see ACME.Start).
const (
	defaultDNSCheckInterval    = 2 * time.Second  // ACMEConfig.DNSCheckInterval's zero value
	defaultDNSCheckMaxInterval = 30 * time.Second // ACMEConfig.DNSCheckMaxInterval's zero value
	// dnsWaitLogEvery is how often the wait is logged again: the first
	// line may have scrolled away by the time someone looks.
	dnsWaitLogEvery = 5 * time.Minute
	// dnsLookupTimeout bounds one check. The Go resolver tries each
	// server of resolv.conf (attempts × timeout) before it gives up.
	dnsLookupTimeout = 10 * time.Second
)

// keyResolver is the log field naming the DNS server asked.
const keyResolver = "resolver"

// parseDNSResolver validates ACMEConfig.DNSResolver: "host:port", or an IP
// address alone, which means port 53. It returns the address to dial.
func parseDNSResolver(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	if ip := net.ParseIP(addr); ip != nil {
		return net.JoinHostPort(addr, "53"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", &ConfigError{Field: "DNSResolver", Value: addr, Err: errors.New(`want "host:port" or an IP address`)}
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || host == "" {
		return "", &ConfigError{Field: "DNSResolver", Value: addr, Err: errors.New("want a host and a port from 1 to 65535")}
	}
	return addr, nil
}

// newDNSResolver returns the resolver that asks server, or the system's if
// server is empty. It always asks over TCP: the Go resolver dials "udp"
// first, but speaks DNS over TCP on any connection that is not a
// net.PacketConn, every DNS server must answer over TCP (RFC 7766), and
// some test servers (certs/acmetest) answer only over TCP.
func newDNSResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	var d net.Dialer
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			// The address the Go resolver passes is resolv.conf's.
			return d.DialContext(ctx, "tcp", server)
		},
	}
}

// manage is the goroutine Start starts: it waits until the certificate is
// in storage or the name resolves, then hands the name to certmagic,
// which loads the certificate or orders one at once.
func (a *ACME) manage(ctx context.Context) {
	if !a.awaitDNS(ctx) {
		return
	}
	a.setReason("loading the certificate from storage or ordering one from " + a.ca)
	// With ManageAsync, certmagic's errors come later, as events and log
	// lines; the only one returned here would be a bad name, which
	// NewACME refused already.
	if err := a.magic.ManageAsync(ctx, []string{a.cname}); err != nil {
		a.mu.Lock()
		a.lastErr = err
		a.reason = "certificate management failed to start: " + err.Error()
		a.mu.Unlock()
		a.metrics.ACMEFailure()
		a.log.Error().Err(err).Msg("certificate management failed to start")
	}
}

// awaitDNS returns true as soon as the certificate is in storage (which
// needs no DNS: it is loaded, not ordered) or the name resolves, checking
// with backoff from DNSCheckInterval to DNSCheckMaxInterval; it returns
// false when ctx is done. While the name does not resolve, the pending
// reason says so, the metric is 1, and a warning is logged at once and
// every dnsWaitLogEvery. Storage is looked at on every check, so that a
// certificate obtained meanwhile by another instance sharing it is
// loaded. A storage failure is reported by the storage (storageFailed)
// and checked again after the next wait.
func (a *ACME) awaitDNS(ctx context.Context) bool {
	defer a.metrics.ACMEWaitingForDNS(false)
	wait := a.dnsInterval
	var since, logged time.Time // when the wait for DNS began and was last logged; zero before
	for {
		stored, err := a.stored(ctx)
		if ctx.Err() != nil {
			return false
		}
		switch {
		case err != nil:
			// Reported by the storage; the reason says so.
		case stored:
			a.log.Debug().Msg("the certificate is in storage; loading it without checking DNS")
			return true
		default:
			addrs, err := a.lookup(ctx)
			if ctx.Err() != nil {
				return false
			}
			if err == nil {
				ev := a.log.Info().Strs("addresses", addrs).Str(keyResolver, a.resolverName())
				if !since.IsZero() {
					ev = ev.Str("waited", time.Since(since).Round(time.Second).String())
				}
				ev.Msg("the name resolves; ordering a certificate")
				return true
			}
			now := time.Now()
			if since.IsZero() {
				since = now
			}
			a.setReason(fmt.Sprintf("waiting for DNS: %s does not resolve yet: %v", a.cname, err))
			a.metrics.ACMEWaitingForDNS(true)
			if logged.IsZero() || now.Sub(logged) >= dnsWaitLogEvery {
				logged = now
				a.log.Warn().Err(err).Str(keyResolver, a.resolverName()).
					Str("waited", now.Sub(since).Round(time.Second).String()).
					Msg("waiting for DNS: no certificate is ordered until the name resolves (an A, AAAA or CNAME record " +
						"leading to this server), so that the CA's validation does not fail; logged again every " +
						dnsWaitLogEvery.String() + " while waiting")
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, a.dnsMaxInterval)
	}
}

// stored reports whether storage holds the name's certificate and key
// from the configured CA, as certmagic would load them.
func (a *ACME) stored(ctx context.Context) (bool, error) {
	iss := a.issuer.IssuerKey()
	for _, key := range []string{certmagic.StorageKeys.SiteCert(iss, a.cname), certmagic.StorageKeys.SitePrivateKey(iss, a.cname)} {
		if _, err := a.storage.Stat(ctx, key); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, err
		}
	}
	return true, nil
}

// lookup resolves the name. An A or AAAA record, directly or through a
// CNAME, counts: the CA connects to an address, so a CNAME leading
// nowhere (yet) would fail its validation as well.
func (a *ACME) lookup(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
	defer cancel()
	// Absolute (a trailing dot), so that resolv.conf's search domains are
	// not tried: the CA asks for the name as it is.
	addrs, err := a.resolver.LookupHost(ctx, a.cname+".")
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		// Name the server asked: with DNSResolver set, the Go resolver
		// reports resolv.conf's, which our Dial ignores.
		c := *de
		c.Name = a.cname
		if a.dnsServer != "" {
			c.Server = a.dnsServer
		}
		err = &c
	}
	return addrs, err
}

// resolverName names the DNS server asked, for logs.
func (a *ACME) resolverName() string {
	if a.dnsServer == "" {
		return "system"
	}
	return a.dnsServer
}
