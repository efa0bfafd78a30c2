package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Status is what a certificate source reports about the certificate it
// serves, for readiness and the expiry watch. Source.Status and
// ACME.Status return it; the fields are shared and must not be modified.
type Status struct {
	// Source is "file" or "acme".
	Source string
	// Leaf is the certificate being served; nil if there is none yet
	// (ACME before its first certificate).
	Leaf *x509.Certificate
	// Pending says why there is no certificate yet, when Leaf is nil.
	Pending string
	// LastReload is the outcome of the last load of the files; nil for
	// ACME.
	LastReload *ReloadStatus
	// LastError is the last failed ACME order, if any; nil for files.
	LastError error
}

// ConfigError is a problem with one field of a configuration struct of
// this package (SourceConfig, ACMEConfig, the leaf domain name's label and
// region). Field is the field's Go name, which a command maps to its own
// flag; Value, if not empty, is the value at fault.
type ConfigError struct {
	Field string
	Value string
	Err   error
}

func (e *ConfigError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err)
	}
	return e.Field + ": " + e.Err.Error()
}
func (e *ConfigError) Unwrap() error { return e.Err }

// errRequired is a ConfigError's Err for a field that must be set.
var errRequired = errors.New("required")
