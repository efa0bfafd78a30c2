package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/scoregate/scoregate/certs"
)

// fixes says what to do about each problem code in r: the commands and
// flags that fix it. Codes are certs.Problem's. Each command carries the
// flags and files c holds, so that it runs as printed; where the user
// must supply a file first, the fix says which and under what name.
func fixes(r *certs.Report, c checkConfig) map[string]string {
	pfx := ""
	if c.convertIn == nil && hasCode(r, "no_certificate") && needsPassword(c.certFile) {
		c.passwordFile = pfxPassword
		pfx = fmt.Sprintf(" (%s: a file whose first line is the .pfx password)", pfxPassword)
	}
	convert := convertCommand(c)
	outCert, outKey := fixedNames(c)
	wrote := fmt.Sprintf("writes %s and %s and checks them as this check does; then serve those two files", shellQuote(outCert), shellQuote(outKey))
	all := map[string]string{
		"unreadable":            "check the path and that this user may read the file",
		"no_certificate":        fmt.Sprintf("a .pfx/.p12, DER or mixed file: `%s`%s %s", convert, pfx, wrote),
		"malformed_certificate": "download the certificate again from its CA (the file is damaged)",
		"unexpected_block":      fmt.Sprintf("split or reorder the file: `%s` %s", convert, wrote),
		"chain_order":           fmt.Sprintf("put the leaf first, then each certificate's issuer: `%s` %s", convert, wrote),
		"no_key": fmt.Sprintf("give the private key made with the certificate's request; from a .pfx that holds both: `scoregate cert convert --in FILE.pfx --out-cert %s --out-key %s%s`",
			outCert, outKey, checkedFlags(c)),
		"malformed_key":    "export the key again (the file is damaged)",
		"encrypted_key":    "decrypt it: openssl pkey -in KEY -out key.pem (and keep key.pem mode 0600)",
		"weak_key":         "reissue the certificate with an ECDSA P-256 key, or RSA of at least 2048 bits",
		"unsupported_key":  "reissue the certificate with an ECDSA P-256 key, or RSA of at least 2048 bits",
		"key_mismatch":     "find the key made with this certificate's request: `openssl x509 -noout -pubkey -in CERT | openssl sha256` and `openssl pkey -pubout -in KEY | openssl sha256` print the same for a pair",
		"name_not_covered": fmt.Sprintf("reissue the certificate with %q among its DNS names, or set --ssl-cname to one of them", c.cname),
		"no_server_auth":   "reissue the certificate for TLS server authentication (Extended Key Usage serverAuth)",
		"expired":          "renew the certificate (or let serve --acme obtain and renew one)",
		"not_yet_valid":    "wait until it is valid, or check this machine's clock",
		"validity":         "renew the certificate before it expires",
	}
	out := map[string]string{}
	for _, p := range r.Problems {
		if p.Code == "chain_untrusted" {
			out[p.Code] = untrustedFix(r, p.Cause, c)
		} else if f, ok := all[p.Code]; ok {
			out[p.Code] = f
		}
	}
	return out
}

// untrustedFix is chain_untrusted's fix for the cause (certs.Problem's
// Cause): the two common causes need different things.
func untrustedFix(r *certs.Report, cause string, c checkConfig) string {
	root := ""
	if r.Trust != nil {
		root = r.Trust.Root
	}
	switch cause {
	case "missing_intermediate":
		inter := filepath.Join(filepath.Dir(c.certFile), "intermediate.pem")
		outCert, outKey := fixedNames(c)
		if n := len(r.Chain); n > 1 && r.Chain[n-1].CA {
			// The file has an intermediate already: what it lacks is
			// most likely the root, which belongs with the clients.
			save, rootFile := rootStep(c)
			return fmt.Sprintf("the chain ends at the intermediate %q, issued by %q, which is neither in the file nor a trusted root. "+
				"If %q is your own private root, %s: `%s` (clients need it too: curl --cacert %s, or their trust store). "+
				"If it is another intermediate, save it from your CA as %s, then `%s` puts it in the chain, writes %s and %s and checks them; serve those two files",
				r.Chain[n-1].Subject, root, root, save, checkCommand(c, c.certFile, c.keyFile, rootFile), shellQuote(rootFile), shellQuote(inter), convertCommand(c, inter), shellQuote(outCert), shellQuote(outKey))
		}
		return fmt.Sprintf("an intermediate is missing: the chain ends at a certificate issued by %q, which is neither in the file nor a trusted root. "+
			"Save that certificate from your CA as %s (PEM or DER; the CA's \"full chain\" download holds it), then `%s` puts it after the leaf, "+
			"writes %s and %s and checks them; serve those two files. If %q is your own private root instead, give it with --ca-file (clients need it too)",
			root, shellQuote(inter), convertCommand(c, inter), shellQuote(outCert), shellQuote(outKey), root)
	case "untrusted_root":
		save, rootFile := rootStep(c)
		return fmt.Sprintf("a private root: the chain ends at the self-signed %q, which is not a trusted root. %s: `%s`. "+
			"Clients need it too (curl --cacert %s, or the client machines' trust store)", root, upperFirst(save), checkCommand(c, c.certFile, c.keyFile, rootFile), shellQuote(rootFile))
	}
	return "the chain does not verify for the reason above: reissue the certificate, or take its chain from the CA again"
}

// rootStep says where to put a private root for check: into c's
// --ca-file when there is one, else a root.pem next to the certificate;
// file is that --ca-file.
func rootStep(c checkConfig) (step, file string) {
	if c.caFile != "" {
		return fmt.Sprintf("add that root's certificate to --ca-file %s (it is not there) and check again", shellQuote(c.caFile)), c.caFile
	}
	file = filepath.Join(filepath.Dir(c.certFile), "root.pem")
	return fmt.Sprintf("save that root's certificate as %s and give it to check", shellQuote(file)), file
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// dnsFix is the fix for dns_mismatch and dns_unresolved.
func dnsFix(code string, d *dnsInfo, c checkConfig) string {
	again := checkCommand(c, c.certFile, c.keyFile, c.caFile)
	records := "an A record (AAAA for IPv6) to " + strings.Join(d.Expected, " or ") + ", or a CNAME to the service's own DNS name"
	if code == "dns_unresolved" {
		return fmt.Sprintf("create %s for %s; once it is published, `%s` says so", records, d.Name, again)
	}
	return fmt.Sprintf("point %s at the service: %s, and remove the records for %s; resolvers keep an old answer for its TTL. Then `%s` says so",
		d.Name, records, strings.Join(d.unexpected, ", "), again)
}

// convertCommand is the `scoregate cert convert` line that reads c's files
// (and extra ones, after the certificate file), orders the chain, writes
// fixedNames(c) and checks them with c's --ssl-cname and --ca-file.
func convertCommand(c checkConfig, extra ...string) string {
	ins := []string{c.certFile}
	ins = append(ins, extra...)
	if c.keyFile != c.certFile {
		ins = append(ins, c.keyFile)
	}
	if c.convertIn != nil {
		ins = append(slices.Clone(c.convertIn), extra...)
	}
	var b strings.Builder
	b.WriteString("scoregate cert convert")
	for _, in := range ins {
		fmt.Fprintf(&b, " --in %s", shellQuote(in))
	}
	if c.passwordFile != "" {
		fmt.Fprintf(&b, " --password-file %s", shellQuote(c.passwordFile))
	}
	outCert, outKey := fixedNames(c)
	fmt.Fprintf(&b, " --out-cert %s --out-key %s", shellQuote(outCert), shellQuote(outKey))
	if c.convertIn != nil {
		b.WriteString(" --force") // the files this convert wrote
	}
	b.WriteString(checkedFlags(c))
	return b.String()
}

// hasCode reports whether r has a problem with code.
func hasCode(r *certs.Report, code string) bool {
	return slices.ContainsFunc(r.Problems, func(p certs.Problem) bool { return p.Code == code })
}

// checkedFlags is " --ssl-cname N --ca-file F" for the flags c has, so
// that a suggested convert checks its result as this check did.
func checkedFlags(c checkConfig) string {
	var b strings.Builder
	if c.cname != "" {
		fmt.Fprintf(&b, " --ssl-cname %s", shellQuote(c.cname))
	}
	if c.caFile != "" {
		fmt.Fprintf(&b, " --ca-file %s", shellQuote(c.caFile))
	}
	return b.String()
}

// checkCommand is the `scoregate check` line for the pair certFile and
// keyFile with c's other flags, and caFile as --ca-file ("" for none).
func checkCommand(c checkConfig, certFile, keyFile, caFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "scoregate check --%s %s --%s %s --ssl-cname %s", flagCert, shellQuote(certFile), flagKey, shellQuote(keyFile), shellQuote(c.cname))
	if caFile != "" {
		fmt.Fprintf(&b, " --ca-file %s", shellQuote(caFile))
	}
	if c.resolve && len(c.expect) == 0 {
		b.WriteString(" --resolve")
	}
	if len(c.expect) > 0 {
		fmt.Fprintf(&b, " --expect %s", c.expect.String())
	}
	if c.dnsResolver != "" {
		fmt.Fprintf(&b, " --dns-resolver %s", shellQuote(c.dnsResolver))
	}
	return b.String()
}

// fixedNames are the files a suggested convert writes: next to the
// inputs, named after them, never one of them; for cert convert's own
// report, the files it wrote.
func fixedNames(c checkConfig) (certOut, keyOut string) {
	if c.convertIn != nil {
		return c.certFile, c.keyFile
	}
	stem := func(p string) string { return strings.TrimSuffix(p, filepath.Ext(p)) }
	certOut, keyOut = stem(c.certFile)+"-fixed.pem", stem(c.keyFile)+"-fixed.pem"
	if certOut == keyOut {
		certOut, keyOut = stem(c.certFile)+"-fixed-cert.pem", stem(c.keyFile)+"-fixed-key.pem"
	}
	return certOut, keyOut
}

// writeReport prints the report for a person.
func writeReport(w io.Writer, out checkOutput) {
	r := out.Report
	errs, warns, dnsErrs := 0, 0, 0
	for _, p := range r.Problems {
		switch {
		case p.Severity != "error":
			warns++
		case p.File == "":
			dnsErrs++
			errs++
		default:
			errs++
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
		if d.Matches != nil {
			verdict := "yes: every address is expected"
			switch {
			case d.Error != "":
				verdict = "NO: the name does not resolve"
			case !*d.Matches:
				verdict = "NO: not expected " + strings.Join(d.unexpected, ", ")
			}
			fmt.Fprintf(w, "  expected     %s\n", strings.Join(d.Expected, ", "))
			fmt.Fprintf(w, "  points here  %s\n", verdict)
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
			where := p.File + " file"
			if p.File == "" {
				where = "DNS"
			}
			fmt.Fprintf(w, "  %d. %s: %s [%s]\n", n, where, p.Message, p.Code)
			if f := out.Fixes[p.Code]; f != "" {
				fmt.Fprintf(w, "     fix: %s\n", f)
			}
		}
	}

	fmt.Fprintln(w)
	switch {
	case dnsErrs > 0 && errs == dnsErrs && r.Serves:
		fmt.Fprintf(w, "Verdict: invalid (%s). The certificate and key are fine, but %s does not point at the service yet; fix DNS and run this check again.\n", plural(errs, "error"), r.CName)
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
