package main

import (
	"context"
	"time"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/metrics"
	"github.com/scoregate/scoregate/proxy"
)

// readiness answers /readyz.
func (s *server) readiness(context.Context) metrics.Readiness {
	return readiness(time.Now(), s.certs.Status(), s.proxy.Health())
}

// readiness is /readyz as a function of the served certificate and the
// services' last health checks, the same for both certificate sources:
// ready when a certificate is served that is valid now, and every service
// has a replica that answered its last check.
func readiness(now time.Time, cert certs.Status, services []metrics.ServiceInfo) metrics.Readiness {
	rd := metrics.Readiness{Services: services}
	leaf := cert.Leaf
	if leaf != nil {
		rd.Certificate = &metrics.CertInfo{Subject: leaf.Subject.String(), DNSNames: leaf.DNSNames, NotAfter: leaf.NotAfter, Source: cert.Source}
	}
	if last := cert.LastReload; last != nil {
		rd.LastReload = &metrics.ReloadInfo{Result: metrics.ResultOK, At: last.At}
		if last.Err != nil {
			rd.LastReload.Result, rd.LastReload.Error = metrics.ResultError, last.Err.Error()
		}
	}
	switch {
	case leaf == nil && cert.Pending != "":
		rd.Reason = "no certificate yet: " + cert.Pending
	case leaf == nil:
		rd.Reason = "no certificate loaded"
	case !now.Before(leaf.NotAfter):
		rd.Reason = "the certificate expired at " + stamp(leaf.NotAfter)
		if cert.LastError != nil {
			rd.Reason += "; the last order failed: " + cert.LastError.Error()
		}
	case now.Before(leaf.NotBefore):
		rd.Reason = "the certificate is not valid before " + stamp(leaf.NotBefore)
	default:
		rd.Ready, rd.Reason = servicesReady(services)
	}
	return rd
}

// servicesReady is the services' part of readiness: each needs a replica
// that answered its last check. The reason names the first that has none.
func servicesReady(services []metrics.ServiceInfo) (bool, string) {
	for _, s := range services {
		if s.Ready {
			continue
		}
		what := "backend"
		if s.Name != proxy.DefaultServiceLabel {
			what = "service " + s.Name
		}
		checked, lastErr := false, ""
		for _, r := range s.Replicas {
			if !r.CheckedAt.IsZero() {
				checked = true
				if lastErr == "" {
					lastErr = r.Error
				}
			}
		}
		switch {
		case len(s.Replicas) == 0:
			return false, what + " has no replicas (its name resolved to no address)"
		case !checked:
			return false, what + " not checked yet"
		default:
			return false, what + " not ready: " + lastErr
		}
	}
	return true, ""
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
