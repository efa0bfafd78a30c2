package certs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mholt/acmez/v3/acme"
)

// onEvent is certmagic's event hook: it counts orders, logs one line per
// state change and keeps the reason Status reports. certmagic calls it
// synchronously, so it only updates counters and state.
func (a *ACME) onEvent(_ context.Context, event string, data map[string]any) error {
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		if !a.isOurs(data) {
			return nil
		}
		if !a.haveCert.Load() {
			a.setReason("ordering a certificate from " + a.ca)
		}
		a.log.Info().Bool(keyRenewal, renewal).Str(keyCA, a.ca).Msg("ordering a certificate")
	case "cert_obtained":
		if !a.isOurs(data) {
			return nil
		}
		if renewal {
			a.metrics.ACMERenewal()
			a.log.Info().Msg("certificate renewed")
		} else {
			a.metrics.ACMEOrder()
			a.log.Info().Msg("certificate obtained")
		}
	case "cert_failed":
		if !a.isOurs(data) {
			return nil
		}
		a.metrics.ACMEFailure()
		err, _ := data["error"].(error)
		if err == nil {
			err = errors.New("unknown error")
		}
		msg := "certificate order failed; certmagic retries with backoff"
		if hint, ok := a.accountRefused(err); ok {
			err = fmt.Errorf("the CA refused to register the ACME account (%s): %w", hint, err)
			msg = "the CA refused to register the ACME account, so no certificate can be ordered; certmagic retries with backoff"
		}
		a.mu.Lock()
		a.lastErr = err
		if !a.haveCert.Load() {
			a.reason = "the last order failed (certmagic retries with backoff): " + err.Error()
		}
		a.mu.Unlock()
		a.log.Error().Err(err).Bool(keyRenewal, renewal).Msg(msg)
	case "cached_managed_cert":
		sans, _ := data["sans"].([]string)
		if !covers(sans, a.cname) {
			return nil
		}
		if leaf := a.Current(); leaf != nil {
			a.metrics.CertLoaded(sourceACME, leaf.NotAfter, false)
		}
		if a.haveCert.CompareAndSwap(false, true) {
			a.setReason("")
			a.loggedPending.Store(false)
			ev := a.log.Info()
			if leaf := a.Current(); leaf != nil {
				ev = ev.Str(keySerial, leaf.SerialNumber.Text(16)).Time(keyNotAfter, leaf.NotAfter)
			}
			ev.Msg("certificate ready")
		}
	}
	return nil
}

// accountRefused reports whether err is the CA's refusal to register the
// ACME account: an ACME problem document (not a network error) in
// certmagic's "registering account … with server" error. It returns what
// to check.
func (a *ACME) accountRefused(err error) (hint string, ok bool) {
	p, isProblem := errors.AsType[acme.Problem](err)
	if !isProblem || !strings.Contains(err.Error(), "registering account") {
		return "", false
	}
	switch {
	case a.eab:
		return "check the External Account Binding's key ID and MAC key", true
	case p.Type == acme.ProblemTypeExternalAccountRequired:
		return "the CA requires External Account Binding: configure its key ID and MAC key", true
	}
	return "the CA's problem follows", true
}

// sourceACME is the metrics' source label of ACME certificates.
const sourceACME = "acme"

// isOurs reports whether an event's identifier is the cname.
func (a *ACME) isOurs(data map[string]any) bool {
	id, _ := data["identifier"].(string)
	return sameName(id, a.cname)
}

func (a *ACME) setReason(r string) {
	a.mu.Lock()
	a.reason = r
	a.mu.Unlock()
}
