package certs

// This file is the second half of ReadBundle: from what the inputs held to
// one key and one ordered chain.

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// contents is what one input held.
type contents struct {
	form   string // "PKCS#12", "PEM", "DER certificate", ...
	detail string // for a DER form, what it is; "" for a container
	certs  []*x509.Certificate
	key    crypto.Signer // nil if none
}

// String describes c for a note: "PKCS#12 with 3 certificates and a
// private key (ECDSA P-256)", or `DER certificate "CN=example.com"`.
func (c *contents) String() string {
	if c.detail != "" {
		return c.form + " " + c.detail
	}
	var parts []string
	if n := len(c.certs); n > 0 {
		parts = append(parts, countNoun(n, "certificate"))
	}
	if c.key != nil {
		parts = append(parts, "a private key ("+describeKey(c.key.Public())+")")
	}
	return c.form + " with " + strings.Join(parts, " and ")
}

// addKey records k as c's key; a second, different key is an error.
func (c *contents) addKey(k crypto.Signer) error {
	switch {
	case c.key == nil:
		c.key = k
	case !sameKey(c.key, k):
		return problemf(ErrUnexpectedBlock, "the file holds two different private keys; keep only the leaf's key")
	}
	return nil
}

// sameKey reports whether a and b are the same key pair.
func sameKey(a, b crypto.Signer) bool {
	pub, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(b.Public())
}

// orderChain picks the leaf among certs (each distinct, in input order) and
// returns it followed by its issuers, with notes on a changed order and on
// the certificates left out. from names the input each certificate came
// from, for the notes.
func orderChain(certs []*x509.Certificate, key crypto.Signer, from map[*x509.Certificate]string) ([]*x509.Certificate, []string, error) {
	leaf, err := findLeaf(certs, key)
	if err != nil {
		return nil, nil, err
	}
	chain := []*x509.Certificate{leaf}
	in := map[*x509.Certificate]bool{leaf: true}
	for last := leaf; !selfSigned(last); {
		// The first issuer in input order wins: with a cross-signed
		// intermediate given twice, the input decides which path to serve.
		var next *x509.Certificate
		for _, c := range certs {
			if !in[c] && last.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next)
		in[next] = true
		last = next
	}

	var notes []string
	if !inputOrder(chain, certs) {
		notes = append(notes, orderNote(chain, certs, from))
	}
	for _, c := range certs {
		if !in[c] {
			notes = append(notes, fmt.Sprintf("dropped %q (from %s): it is not in the chain of the leaf %q", subject(c), from[c], subject(leaf)))
		}
	}
	return chain, notes, nil
}

// orderNote says that the chain came out of order, where, and how it is
// put instead: the chain's certificates as the inputs held them, then in
// serving order.
func orderNote(chain, certs []*x509.Certificate, from map[*x509.Certificate]string) string {
	var held []*x509.Certificate
	files := map[string]bool{}
	for _, c := range certs {
		if slices.Contains(chain, c) {
			held = append(held, c)
			files[from[c]] = true
		}
	}
	const how = "; the output puts it leaf first, each certificate followed by its issuer: "
	if len(files) == 1 {
		return fmt.Sprintf("%s has the chain out of order: %s%s%s", from[held[0]], quotedSubjects(held), how, quotedSubjects(chain))
	}
	s := make([]string, len(held))
	for i, c := range held {
		s[i] = fmt.Sprintf("%q (%s)", subject(c), from[c])
	}
	return fmt.Sprintf("the inputs hold the chain out of order: %s%s%s", strings.Join(s, ", "), how, quotedSubjects(chain))
}

// findLeaf returns the certificate of key or, without a key, the one
// certificate that is not a CA and signed none of the others.
func findLeaf(certs []*x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	var found []*x509.Certificate
	if key != nil {
		for _, c := range certs {
			if pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(key.Public()) {
				found = append(found, c)
			}
		}
		switch len(found) {
		case 0:
			return nil, problemf(ErrKeyMismatch, "%v: the key (%s) belongs to none of the %s (%s)",
				ErrKeyMismatch, describeKey(key.Public()), countNoun(len(certs), "certificate"), quotedSubjects(certs))
		case 1:
			return found[0], nil
		}
		return nil, problemf(ErrChainOrder, "%v: %d certificates have the private key's public key (%s), so the leaf is ambiguous; give only the one to serve",
			ErrChainOrder, len(found), quotedSubjects(found))
	}
	for _, c := range certs {
		if !c.IsCA && !signedAnother(c, certs) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, problemf(ErrChainOrder, "%v: cannot tell which certificate is the leaf: each of the %s is a CA or signed another (%s); give the private key too",
			ErrChainOrder, countNoun(len(certs), "certificate"), quotedSubjects(certs))
	case 1:
		return found[0], nil
	}
	return nil, problemf(ErrChainOrder, "%v: cannot tell which certificate is the leaf: %d are not CAs and signed none of the others (%s); give the private key too, or only one leaf",
		ErrChainOrder, len(found), quotedSubjects(found))
}

// signedAnother reports whether c signed a certificate in certs other than
// itself.
func signedAnother(c *x509.Certificate, certs []*x509.Certificate) bool {
	for _, o := range certs {
		if o != c && o.CheckSignatureFrom(c) == nil {
			return true
		}
	}
	return false
}

// inputOrder reports whether chain's certificates appear in certs in the
// same relative order.
func inputOrder(chain, certs []*x509.Certificate) bool {
	pos := make(map[*x509.Certificate]int, len(certs))
	for i, c := range certs {
		pos[c] = i
	}
	for i := 1; i < len(chain); i++ {
		if pos[chain[i]] < pos[chain[i-1]] {
			return false
		}
	}
	return true
}

// quotedSubjects lists the certificates' subjects, quoted and separated by
// commas.
func quotedSubjects(certs []*x509.Certificate) string {
	s := make([]string, len(certs))
	for i, c := range certs {
		s[i] = fmt.Sprintf("%q", subject(c))
	}
	return strings.Join(s, ", ")
}

// countNoun returns "1 certificate" or "3 certificates".
func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
