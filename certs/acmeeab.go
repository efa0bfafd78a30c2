package certs

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/mholt/acmez/v3/acme"
)

// EAB is an ACME External Account Binding (RFC 8555 §7.3.4): the key
// identifier and MAC key a CA hands out to tie ACME accounts to an account
// of its own.
type EAB struct {
	// KeyID is the key identifier; required.
	KeyID string
	// MACKey is the MAC (HMAC) key, base64url-encoded as CAs hand it out,
	// with or without padding; required. White space around it (a key
	// file's final newline) is ignored. It is a secret: it appears in no
	// log line or error.
	MACKey string
}

// acmeEAB validates e and returns it in the form certmagic's ACME client
// (acmez) decodes: base64url without padding.
func acmeEAB(e *EAB) (*acme.EAB, error) {
	if e == nil {
		return nil, nil
	}
	if strings.TrimSpace(e.KeyID) == "" {
		return nil, &ConfigError{Field: "EABKeyID", Err: errRequired}
	}
	key := strings.TrimRight(strings.TrimSpace(e.MACKey), "=")
	if key == "" {
		return nil, &ConfigError{Field: "EABMACKey", Err: errRequired}
	}
	raw, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		// Not err: nothing of the key goes into the message.
		return nil, &ConfigError{Field: "EABMACKey", Err: errors.New("not base64url (RFC 4648 §5, the alphabet with - and _), as ACME CAs hand MAC keys out")}
	}
	return &acme.EAB{KeyID: strings.TrimSpace(e.KeyID), MACKey: base64.RawURLEncoding.EncodeToString(raw)}, nil
}
