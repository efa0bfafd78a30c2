package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/proxy"
)

// certProvider is what serve needs of a certificate source, PEM files or
// ACME: certificates for handshakes (ServerTLSConfig puts the SNI policy
// around them), extra ALPN protocols, a hook on the plain-HTTP listener
// (ACME's HTTP-01), the work that keeps the certificate current (Run: the
// file watch, or ACME's management), a reload on SIGHUP, and a Status for
// readiness and the expiry watch.
type certProvider interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	ALPN() []string
	HTTPHandler(next http.Handler) http.Handler
	Run(ctx context.Context) error
	Reload() error
	Status() certs.Status
}

// fileCerts is the certificate from PEM files: a certs.Source, watched
// unless --watch=false.
type fileCerts struct {
	*certs.Source
	watch bool
	wcfg  certs.WatchConfig
}

func (f *fileCerts) ALPN() []string                             { return nil }
func (f *fileCerts) HTTPHandler(next http.Handler) http.Handler { return next }

// Run watches the files until ctx is done, or just waits without --watch.
func (f *fileCerts) Run(ctx context.Context) error {
	if !f.watch {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.Watch(ctx, f.wcfg)
}

// acmeCerts is the certificate from ACME.
type acmeCerts struct{ *certs.ACME }

func (a acmeCerts) HTTPHandler(next http.Handler) http.Handler { return a.HTTPChallengeHandler(next) }
func (a acmeCerts) Reload() error                              { return nil } // certmagic keeps it current

// newCertProvider makes the certificate source that cfg asks for. The
// listeners must be bound: ACME answers its challenges on them.
func (s *server) newCertProvider() (certProvider, error) {
	cfg := s.cfg
	if cfg.ACME == nil {
		src, err := certs.NewSource(certs.SourceConfig{
			CertFile: cfg.CertFile,
			KeyFile:  cfg.KeyFile,
			CName:    cfg.CName,
			Roots:    cfg.Roots,
			Metrics:  s.metrics,
		}, s.log)
		if err != nil {
			return nil, usageError{flagError(err)}
		}
		return &fileCerts{Source: src, watch: cfg.Watch, wcfg: cfg.WatchConfig}, nil
	}
	acfg := certs.ACMEConfig{
		CName:           cfg.CName,
		CA:              cfg.ACME.CA,
		CARoot:          cfg.ACME.CARoot,
		Email:           cfg.ACME.Email,
		DNSResolver:     cfg.ACME.DNSResolver,
		EAB:             cfg.ACME.EAB,
		Storage:         cfg.ACME.Storage,
		AllowMissingSNI: cfg.AllowMissingSNI,
		TLSAddr:         s.tlsAddr(),
		Metrics:         s.metrics,
	}
	if s.redirect != nil {
		acfg.HTTPAddr = s.addr("http-listen")
	}
	a, err := certs.NewACME(acfg, s.log)
	if err != nil {
		return nil, usageError{flagError(err)}
	}
	return acmeCerts{a}, nil
}

// flagOf maps what library errors name (a certs.FileError's role, a
// certs.ConfigError's field) to serve's flags: the one table.
var flagOf = map[any]string{
	certs.CertFileRole: flagCert,
	certs.KeyFileRole:  flagKey,
	certs.CAFileRole:   "ca-file",
	"CertFile":         flagCert,
	"KeyFile":          flagKey,
	"CName":            "ssl-cname",
	"CA":               "acme-ca",
	"Storage":          "storage",
	"HTTPAddr":         "http-listen",
	"Label":            "leaf-domain-label",
	"Region":           "region",
	"DNSResolver":      "acme-dns-resolver",
	"EABKeyID":         "acme-eab-kid",
	"EABMACKey":        "acme-eab-hmac-key-file",
}

// flagError names the flag in an error about a file or a setting. Errors
// that name nothing it knows are returned as they are.
func flagError(err error) error {
	var fe *certs.FileError
	var ce *certs.ConfigError
	var ke *proxy.KeyFileError
	switch {
	case errors.As(err, &fe) && flagOf[fe.Role] != "":
		return fmt.Errorf("--%s %q: %w", flagOf[fe.Role], fe.Path, fe.Err)
	case errors.As(err, &ke):
		return fmt.Errorf("--auth-key-file %q: %w", ke.Path, ke.Err)
	case errors.As(err, &ce) && flagOf[ce.Field] != "":
		if ce.Value != "" {
			err = fmt.Errorf("--%s %q: %w", flagOf[ce.Field], ce.Value, ce.Err)
		} else {
			err = fmt.Errorf("--%s: %w", flagOf[ce.Field], ce.Err)
		}
	}
	return err
}
