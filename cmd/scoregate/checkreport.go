package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scoregate/scoregate/certs"
)

// fixes says what to do about each problem code in r: the commands and
// flags that fix it. Codes are certs.Problem's.
func fixes(r *certs.Report, c checkConfig) map[string]string {
	convert := fmt.Sprintf("scoregate cert convert --in %s --in %s --out-cert cert.pem --out-key key.pem", shellQuote(c.certFile), shellQuote(c.keyFile))
	if c.certFile == c.keyFile {
		convert = fmt.Sprintf("scoregate cert convert --in %s --out-cert cert.pem --out-key key.pem", shellQuote(c.certFile))
	}
	all := map[string]string{
		"unreadable":            "check the path and that this user may read the file",
		"no_certificate":        "a .pfx/.p12, DER or mixed file: " + convert,
		"malformed_certificate": "download the certificate again from its CA (the file is damaged)",
		"unexpected_block":      "split or reorder the file with: " + convert,
		"chain_order":           "put the leaf first, then each certificate's issuer; " + convert + " does it",
		"no_key":                "give the key that was created with the certificate request; from a .pfx: " + convert,
		"malformed_key":         "export the key again (the file is damaged)",
		"encrypted_key":         "decrypt it: openssl pkey -in KEY -out key.pem (and keep key.pem mode 0600)",
		"weak_key":              "reissue the certificate with an ECDSA P-256 key, or RSA of at least 2048 bits",
		"unsupported_key":       "reissue the certificate with an ECDSA P-256 key, or RSA of at least 2048 bits",
		"key_mismatch":          "find the key made with this certificate's request: `openssl x509 -noout -pubkey -in CERT | openssl sha256` and `openssl pkey -pubout -in KEY | openssl sha256` print the same for a pair",
		"name_not_covered":      fmt.Sprintf("reissue the certificate with %q among its DNS names, or set --ssl-cname to one of them", c.cname),
		"no_server_auth":        "reissue the certificate for TLS server authentication (Extended Key Usage serverAuth)",
		"expired":               "renew the certificate (or let serve --acme obtain and renew one)",
		"not_yet_valid":         "wait until it is valid, or check this machine's clock",
		"validity":              "renew the certificate before it expires",
		"chain_untrusted":       "append the intermediate certificates from your CA after the leaf (its \"full chain\" download); for a private CA, pass its root with --ca-file",
	}
	if n := len(r.Chain); n > 0 && r.Chain[n-1].SelfSigned {
		all["chain_untrusted"] = "clients must trust this root: for a private CA, install it on the clients and pass it to check with --ca-file; for a public CA, use the chain it issued"
	}
	out := map[string]string{}
	for _, p := range r.Problems {
		if f, ok := all[p.Code]; ok {
			out[p.Code] = f
		}
	}
	return out
}

// writeReport prints the report for a person.
func writeReport(w io.Writer, out checkOutput) {
	r := out.Report
	errs, warns := 0, 0
	for _, p := range r.Problems {
		if p.Severity == "error" {
			errs++
		} else {
			warns++
		}
	}
	if r.CName == "" {
		fmt.Fprintf(w, "Name         not checked (give --ssl-cname)\n")
	} else {
		fmt.Fprintf(w, "Name         %s\n", r.CName)
	}
	if r.Leaf != nil && r.Leaf.NameCovered != nil {
		c := "NOT covered"
		if *r.Leaf.NameCovered {
			c = "covered"
		}
		fmt.Fprintf(w, "  certificate  %s\n", c)
	}
	if d := out.DNS; d != nil {
		switch {
		case d.Error != "":
			fmt.Fprintf(w, "  DNS          does not resolve yet: %s\n", d.Error)
		default:
			if d.CNAME != "" {
				fmt.Fprintf(w, "  CNAME        %s\n", d.CNAME)
			}
			fmt.Fprintf(w, "  addresses    %s\n", strings.Join(d.Addresses, ", "))
		}
	}

	fmt.Fprintf(w, "\nCertificate  %s\n", r.CertFile)
	if l := r.Leaf; l != nil {
		fmt.Fprintf(w, "  subject      %s\n", l.Subject)
		fmt.Fprintf(w, "  DNS names    %s\n", orNone(strings.Join(l.DNSNames, ", ")))
		if len(l.IPAddresses) > 0 {
			fmt.Fprintf(w, "  IP addresses %s\n", strings.Join(l.IPAddresses, ", "))
		}
		eku := "none given (any use)"
		if len(l.ExtKeyUsage) > 0 {
			eku = strings.Join(l.ExtKeyUsage, ", ")
		}
		if !l.ServerAuth {
			eku += " (serverAuth NOT allowed)"
		}
		fmt.Fprintf(w, "  key usage    %s\n", eku)
		fmt.Fprintf(w, "  sha256       %s\n", l.SHA256)
		fmt.Fprintf(w, "  thumbprint   %s (SHA-1, as Windows and Azure show it)\n", l.SHA1)
	}
	if len(r.Chain) > 0 {
		fmt.Fprintf(w, "\nChain, in file order\n")
	}
	for i, l := range r.Chain {
		ca := ""
		switch {
		case l.SelfSigned:
			ca = " (self-signed root)"
		case l.CA:
			ca = " (CA)"
		}
		fmt.Fprintf(w, "  %d. %s%s\n", l.Index, l.Subject, ca)
		fmt.Fprintf(w, "     issuer    %s\n", l.Issuer)
		fmt.Fprintf(w, "     valid     %s to %s (%s)\n", day(l.NotBefore), day(l.NotAfter), left(l, r.CheckedAt))
		if l.SignedByNext != nil {
			verdict := "yes"
			if !*l.SignedByNext {
				verdict = "NO"
			}
			fmt.Fprintf(w, "     signed by %d: %s\n", i+2, verdict)
		}
	}
	if t := r.Trust; t != nil {
		if t.Trusted {
			roots := map[string]string{"ca-file": "--ca-file", "system": "the system's roots"}[t.Roots]
			fmt.Fprintf(w, "\nTrust        verifies to %s (in %s)\n", t.Root, roots)
			fmt.Fprintf(w, "  path         %s\n", strings.Join(t.Path, " <- "))
		} else {
			fmt.Fprintf(w, "\nTrust        does NOT verify: no trusted root for %s\n", t.Root)
		}
	}

	fmt.Fprintf(w, "\nKey          %s\n", r.KeyFile)
	if k := r.Key; k != nil {
		fmt.Fprintf(w, "  type         %s\n", k.Type)
		if r.Leaf != nil {
			m := "yes"
			if !k.Matches {
				m = "NO"
			}
			fmt.Fprintf(w, "  matches      %s\n", m)
		}
	}

	for _, sev := range []string{"error", "warning"} {
		n := 0
		for _, p := range r.Problems {
			if p.Severity != sev {
				continue
			}
			if n == 0 {
				fmt.Fprintf(w, "\n%ss\n", strings.ToUpper(sev[:1])+sev[1:])
			}
			n++
			fmt.Fprintf(w, "  %d. %s file: %s [%s]\n", n, p.File, p.Message, p.Code)
			if f := out.Fixes[p.Code]; f != "" {
				fmt.Fprintf(w, "     fix: %s\n", f)
			}
		}
	}

	fmt.Fprintln(w)
	switch {
	case r.Valid && warns == 0:
		fmt.Fprintln(w, "Verdict: valid. `scoregate serve` with these flags will serve it.")
	case r.Valid:
		fmt.Fprintf(w, "Verdict: valid, with %s. `scoregate serve` will serve it and log the same.\n", plural(warns, "warning"))
	case r.Serves:
		fmt.Fprintf(w, "Verdict: invalid (%s). `scoregate serve` would start and warn, but clients without your root will fail.\n", plural(errs, "error"))
	default:
		fmt.Fprintf(w, "Verdict: invalid (%s). `scoregate serve` would refuse it; fix the errors above and run this check again.\n", plural(errs, "error"))
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func day(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// left says how long a certificate has, as the check saw it.
func left(l certs.Link, now time.Time) string {
	switch {
	case now.Before(l.NotBefore):
		return "NOT valid yet"
	case now.After(l.NotAfter):
		return "EXPIRED"
	}
	return plural(l.DaysLeft, "day") + " left"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
