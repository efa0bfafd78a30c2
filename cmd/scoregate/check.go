package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/scoregate/scoregate/certs"
)

// checkConfig is `scoregate check`'s flags.
type checkConfig struct {
	certFile, keyFile, cname, caFile string
	json, resolve                    bool
	expect                           addrList // --expect; implies resolve
	dnsResolver                      string   // --dns-resolver; "" asks the system's

	// For the commands the fixes suggest, when the report is cert
	// convert's: its --in files and --password-file, so that a suggested
	// convert reads the same inputs and rewrites certFile and keyFile.
	// Empty for check's own report.
	convertIn    []string
	passwordFile string
}

func checkFlags(c *checkConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.StringVar(&c.certFile, flagCert, "", "full-chain certificate `file`, PEM, leaf first (as serve reads it)")
	fs.StringVar(&c.keyFile, flagKey, "", "private key `file`, PEM; may be the certificate file when it holds both (Azure Key Vault's PEM)")
	fs.StringVar(&c.cname, "ssl-cname", "", "the `name` clients use; the certificate must cover it")
	fs.StringVar(&c.caFile, "ca-file", "", "extra trusted root certificates, PEM `file` (a private CA)")
	fs.BoolVar(&c.json, "json", false, "print the report as one JSON document")
	fs.BoolVar(&c.resolve, "resolve", false, "also look up --ssl-cname in DNS and print its addresses and CNAME")
	fs.Var(&c.expect, "expect", "the service's public `IP` address (IPv4 or IPv6), repeatable or comma-separated: invalid unless --ssl-cname resolves and every address it resolves to is one of them (implies --resolve)")
	fs.StringVar(&c.dnsResolver, "dns-resolver", "", "DNS server `host:port` (or an IP, port 53) asked by --resolve and --expect, over TCP (default: the system's resolver)")
	return fs
}

const checkUsage = `Usage: scoregate check --ssl-cert-pem-file F --ssl-key-pem-file K --ssl-cname NAME [--ca-file ROOTS] [--json] [--resolve] [--expect IP[,IP]] [--dns-resolver HOST:PORT]

Runs exactly the validation serve runs on a certificate and key, and reports
what it found and what to do. One difference: a chain that does not verify to a
trusted root (the system's, or --ca-file) is invalid here, where serve only
warns. With --expect, it also says whether the name already points at the
service: it must resolve, and to none but the expected addresses. Exit status:
0 valid (warnings alone are fine), 1 invalid, 2 bad usage.

Flags (each also read from SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag wins):
`

// addrList is the repeatable, comma-separated --expect flag.
type addrList []netip.Addr

func (l *addrList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, a := range *l {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (l *addrList) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		a, err := netip.ParseAddr(f)
		switch {
		case err != nil:
			return fmt.Errorf("%q is not an IP address (give the service's public IPv4 or IPv6 address)", f)
		case a.Zone() != "":
			return fmt.Errorf("%q has a zone; DNS answers carry none", f)
		}
		*l = append(*l, a.Unmap())
	}
	return nil
}

// checkOutput is the report with what the command adds: the DNS answer
// and what to do about each problem code. With --expect, a name that
// does not point at the service is a problem too (File ""), and makes
// the report's Valid false.
type checkOutput struct {
	*certs.Report
	DNS   *dnsInfo          `json:"dns,omitempty"`
	Fixes map[string]string `json:"fixes"`
}

// dnsInfo is the answer to --resolve, and with --expect the comparison.
type dnsInfo struct {
	Name      string   `json:"name"`
	CNAME     string   `json:"cname,omitempty"`
	Addresses []string `json:"addresses"`
	Error     string   `json:"error,omitempty"`
	// Expected is --expect's addresses; Matches is whether the name
	// resolved and every address it resolved to is among them (an
	// expected address the name lacks is fine: the service's IPv4 and
	// IPv6 addresses, say, for a name with only an A record). Both are
	// absent without --expect.
	Expected []string `json:"expected,omitempty"`
	Matches  *bool    `json:"matches,omitempty"`
	// unexpected is what the name resolved to that --expect lacks.
	unexpected []string
}

// newCheckOutput checks the pair c names.
func newCheckOutput(c checkConfig, opts certs.LoadOptions) checkOutput {
	r := certs.Check(c.certFile, c.keyFile, opts)
	return checkOutput{Report: r, Fixes: fixes(r, c)}
}

// pfxPassword is the password file a suggested convert names for a
// password-protected .pfx given to check, which takes no password.
const pfxPassword = "pw.txt"

// needsPassword reports whether file is PKCS#12 that the empty password
// does not open.
func needsPassword(file string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	_, err = certs.ReadBundle([]certs.Input{{Name: file, Data: data}}, nil)
	return errors.Is(err, certs.ErrPasswordRequired)
}

// runCheck is `scoregate check`.
func runCheck(ctx context.Context, args []string, getenv func(string) (string, bool), stdout io.Writer) error {
	var c checkConfig
	if _, err := parseFlags(checkFlags(&c), args, getenv, stdout, checkUsage); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{flagCert, c.certFile}, {flagKey, c.keyFile}, {"ssl-cname", c.cname}} {
		if f.v == "" {
			missing = append(missing, "--"+f.name)
		}
	}
	if len(missing) > 0 {
		return usagef("check: %s required", strings.Join(missing, ", "))
	}
	if err := certs.CheckName(c.cname); err != nil {
		return usagef("--ssl-cname %q: %v", c.cname, err)
	}
	opts := certs.LoadOptions{CName: c.cname}
	if c.caFile != "" {
		roots, err := certs.LoadRoots(c.caFile)
		if err != nil {
			return usageError{flagError(err)}
		}
		opts.Roots = roots
	}
	var resolver *net.Resolver
	if len(c.expect) > 0 {
		c.resolve = true
	}
	if c.resolve {
		var err error
		if resolver, err = certs.NewDNSResolver(c.dnsResolver); err != nil {
			return usagef("--dns-resolver %q: %v", c.dnsResolver, errors.Unwrap(err))
		}
	} else if c.dnsResolver != "" {
		return usagef("--dns-resolver needs --resolve or --expect")
	}
	out := newCheckOutput(c, opts)
	if c.resolve {
		out.addDNS(lookup(ctx, resolver, c.dnsResolver, c.cname, c.expect), c)
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		writeReport(stdout, out)
	}
	if !out.Valid {
		return exitError(exitFailure)
	}
	return nil
}

// exitError ends a command with its exit code and nothing more on stderr:
// the command has said what there was to say.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// lookup resolves name for --resolve with resolver, with a deadline, and
// compares the answer with expect when it is not empty. server names the
// DNS server in errors ("" for the system's).
func lookup(ctx context.Context, resolver *net.Resolver, server, name string, expect []netip.Addr) *dnsInfo {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &dnsInfo{Name: name, Addresses: []string{}}
	// Absolute (a trailing dot), so that resolv.conf's search domains are
	// not tried (a Kubernetes pod has several, with ndots:5): clients ask
	// for the name as it is. A name without a dot (localhost) is asked as
	// given: the system's resolver may answer it from /etc/hosts only
	// that way.
	abs := name
	if strings.Contains(strings.TrimSuffix(name, "."), ".") {
		abs = strings.TrimSuffix(name, ".") + "."
	}
	if cn, err := resolver.LookupCNAME(ctx, abs); err == nil && !strings.EqualFold(strings.TrimSuffix(cn, "."), strings.TrimSuffix(name, ".")) {
		d.CNAME = cn
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", abs)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		// With --dns-resolver, the Go resolver names resolv.conf's
		// server, which the resolver's Dial ignores.
		c := *de
		c.Name = name
		if server != "" {
			c.Server = server
		}
		err = &c
	}
	for _, a := range expect {
		d.Expected = append(d.Expected, a.String())
	}
	if err != nil {
		d.Error = err.Error()
		if len(expect) > 0 {
			d.Matches = new(false)
		}
		return d
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	for _, a := range addrs {
		a = a.Unmap()
		d.Addresses = append(d.Addresses, a.String())
		if len(expect) > 0 && !slices.Contains(expect, a) {
			d.unexpected = append(d.unexpected, a.String())
		}
	}
	if len(expect) > 0 {
		d.Matches = new(len(d.unexpected) == 0)
	}
	return d
}

// addDNS adds the DNS answer to the report and, when --expect was given
// and the name does not point at the service, the problem and its fix.
func (out *checkOutput) addDNS(d *dnsInfo, c checkConfig) {
	out.DNS = d
	if d.Matches == nil || *d.Matches {
		return
	}
	p := certs.Problem{Severity: "error", Code: "dns_mismatch",
		Message: fmt.Sprintf("%s resolves to %s, which --expect does not list (expected %s); clients that get it do not reach the service",
			d.Name, strings.Join(d.unexpected, ", "), strings.Join(d.Expected, ", "))}
	if d.Error != "" {
		p.Code = "dns_unresolved"
		p.Message = fmt.Sprintf("%s does not resolve: %s", d.Name, d.Error)
	}
	// Errors come before warnings.
	i := slices.IndexFunc(out.Problems, func(p certs.Problem) bool { return p.Severity != "error" })
	if i < 0 {
		i = len(out.Problems)
	}
	out.Problems = slices.Insert(out.Problems, i, p)
	out.Valid = false
	out.Fixes[p.Code] = dnsFix(p.Code, d, c)
}
