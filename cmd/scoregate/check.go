package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/scoregate/scoregate/certs"
)

// checkConfig is `scoregate check`'s flags.
type checkConfig struct {
	certFile, keyFile, cname, caFile string
	json, resolve                    bool
}

func checkFlags(c *checkConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.StringVar(&c.certFile, flagCert, "", "full-chain certificate `file`, PEM, leaf first (as serve reads it)")
	fs.StringVar(&c.keyFile, flagKey, "", "private key `file`, PEM; may be the certificate file when it holds both (Azure Key Vault's PEM)")
	fs.StringVar(&c.cname, "ssl-cname", "", "the `name` clients use; the certificate must cover it")
	fs.StringVar(&c.caFile, "ca-file", "", "extra trusted root certificates, PEM `file` (a private CA)")
	fs.BoolVar(&c.json, "json", false, "print the report as one JSON document")
	fs.BoolVar(&c.resolve, "resolve", false, "also look up --ssl-cname in DNS and print its addresses and CNAME")
	return fs
}

const checkUsage = `Usage: scoregate check --ssl-cert-pem-file F --ssl-key-pem-file K --ssl-cname NAME [--ca-file ROOTS] [--json] [--resolve]

Runs exactly the validation serve runs on a certificate and key, and reports
what it found and what to do. One difference: a chain that does not verify to a
trusted root (the system's, or --ca-file) is invalid here, where serve only
warns. Exit status: 0 valid (warnings alone are fine), 1 invalid, 2 bad usage.

Flags (each also read from SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag wins):
`

// checkOutput is the report with what the command adds: the DNS answer
// and what to do about each problem code.
type checkOutput struct {
	*certs.Report
	DNS   *dnsInfo          `json:"dns,omitempty"`
	Fixes map[string]string `json:"fixes"`
}

// dnsInfo is the answer to --resolve.
type dnsInfo struct {
	Name      string   `json:"name"`
	CNAME     string   `json:"cname,omitempty"`
	Addresses []string `json:"addresses"`
	Error     string   `json:"error,omitempty"`
}

// newCheckOutput checks the pair c names.
func newCheckOutput(c checkConfig, opts certs.LoadOptions) checkOutput {
	r := certs.Check(c.certFile, c.keyFile, opts)
	return checkOutput{Report: r, Fixes: fixes(r, c)}
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
	out := newCheckOutput(c, opts)
	if c.resolve {
		out.DNS = lookup(ctx, c.cname)
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

// lookup resolves name for --resolve, with a deadline.
func lookup(ctx context.Context, name string) *dnsInfo {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &dnsInfo{Name: name, Addresses: []string{}}
	if cn, err := net.DefaultResolver.LookupCNAME(ctx, name); err == nil && !strings.EqualFold(strings.TrimSuffix(cn, "."), strings.TrimSuffix(name, ".")) {
		d.CNAME = cn
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	for _, a := range addrs {
		d.Addresses = append(d.Addresses, a.String())
	}
	slices.Sort(d.Addresses)
	return d
}
