package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/scoregate/scoregate/certs"
)

const certUsage = `Usage:
  scoregate cert dev --ssl-cname NAME [--out DIR]
      a development CA and a certificate for NAME signed by it (development only)
  scoregate cert convert --in FILE [--in FILE] --out-cert C --out-key K [--password-file F] [--force]
      turn a .pfx/.p12, DER files or a mixed PEM bundle into the pair serve reads

Run "scoregate cert dev --help" or "scoregate cert convert --help" for the flags.
`

// runCert is `scoregate cert`: dev and convert.
func runCert(args []string, getenv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, certUsage)
		return exitError(exitUsage)
	}
	switch args[0] {
	case "dev":
		return runCertDev(args[1:], getenv, stdout, stderr)
	case "convert":
		return runCertConvert(args[1:], getenv, stdin, stdout)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, certUsage)
		return nil
	}
	return usagef("cert: unknown command %q; run \"scoregate cert help\"", args[0])
}

// runCertDev is `scoregate cert dev`: the files serve --dev makes, for use
// with serve's own flags or another server.
func runCertDev(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cert dev", flag.ContinueOnError)
	cname := fs.String("ssl-cname", "localhost", "the `name` to issue the certificate for")
	out := fs.String("out", defaultDevDir(), "`directory` to write ca.pem, cert.pem and key.pem to (serve --dev's by default, so both share the CA)")
	if _, err := parseFlags(fs, args, getenv, stdout, "Usage: scoregate cert dev [flags]\n\nFlags:\n"); err != nil {
		return err
	}
	if err := certs.CheckName(*cname); err != nil {
		return usagef("--ssl-cname %q: %v", *cname, err)
	}
	files, err := certs.WriteDev(*out, *cname)
	if err != nil {
		return usagef("--out %q: %w", *out, err)
	}
	fmt.Fprintf(stderr, "scoregate: development only: the CA's key (%s) can mint certificates that every client trusting ca.pem accepts; never trust it beyond a test machine\n", filepath.Join(filepath.Dir(files.CAFile), "ca-key.pem"))
	fmt.Fprintf(stdout, "Wrote a development certificate for %s:\n", *cname)
	fmt.Fprintf(stdout, "  CA           %s  (trust this on the clients)\n", files.CAFile)
	fmt.Fprintf(stdout, "  certificate  %s  (full chain: the leaf, then the CA)\n", files.CertFile)
	fmt.Fprintf(stdout, "  key          %s  (mode 0600)\n", files.KeyFile)
	fmt.Fprintf(stdout, "Serve it:\n  scoregate serve --ssl-cert-pem-file %s --ssl-key-pem-file %s --ssl-cname %s\n",
		shellQuote(files.CertFile), shellQuote(files.KeyFile), *cname)
	fmt.Fprintf(stdout, "Try it:\n  %s\n", devCurl(*cname, ":8443", files.CAFile))
	return nil
}

// devCurl is a scoring request to copy and paste against a development
// certificate for name served on listen. A name other than localhost does
// not resolve to this machine yet, so curl is told where it is.
func devCurl(name, listen, caFile string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "", "443"
	}
	url := "https://" + name
	if port != "443" {
		url += ":" + port
	}
	var b strings.Builder
	b.WriteString("curl")
	if caFile != "" {
		fmt.Fprintf(&b, " --cacert %s", shellQuote(caFile))
	}
	if n := strings.ToLower(strings.TrimSuffix(name, ".")); n != "localhost" && !strings.HasSuffix(n, ".localhost") {
		ip := net.ParseIP(host)
		if ip == nil || ip.IsUnspecified() {
			ip = net.IPv4(127, 0, 0, 1)
		}
		addr := ip.String()
		if ip.To4() == nil {
			addr = "[" + addr + "]"
		}
		fmt.Fprintf(&b, " --resolve %s:%s:%s", name, port, addr)
	}
	fmt.Fprintf(&b, ` -H 'Content-Type: application/json' -d '{"data":[[1,2,3,4]]}' %s/score`, url)
	return b.String()
}

// inputs is the repeatable --in flag.
type inputs []string

func (i *inputs) String() string     { return strings.Join(*i, ",") }
func (i *inputs) Set(v string) error { *i = append(*i, v); return nil }

// runCertConvert is `scoregate cert convert`.
func runCertConvert(args []string, getenv func(string) (string, bool), stdin io.Reader, stdout io.Writer) error {
	var (
		in                          inputs
		pwFile, outCert, outKey, cn string
		caFile                      string
		force                       bool
	)
	fl := flag.NewFlagSet("cert convert", flag.ContinueOnError)
	fl.Var(&in, "in", "input `file`, repeatable: a .pfx/.p12, a DER certificate or key, or PEM (a chain in any order, with or without the key)")
	fl.StringVar(&pwFile, "password-file", "", "`file` whose first line is the .pfx password (- reads it from stdin); never give a password on the command line")
	fl.StringVar(&outCert, "out-cert", "", "the full-chain certificate `file` to write, PEM, leaf first (serve's --ssl-cert-pem-file)")
	fl.StringVar(&outKey, "out-key", "", "the private key `file` to write, unencrypted PKCS#8 PEM, mode 0600 (serve's --ssl-key-pem-file)")
	fl.BoolVar(&force, "force", false, "replace --out-cert and --out-key if they exist")
	fl.StringVar(&cn, "ssl-cname", "", "check that the certificate covers this `name` too")
	fl.StringVar(&caFile, "ca-file", "", "extra trusted root certificates for the check, PEM `file`")
	if _, err := parseFlags(fl, args, getenv, stdout, "Usage: scoregate cert convert [flags]\n\nFlags:\n"); err != nil {
		return err
	}
	switch {
	case len(in) == 0 || outCert == "" || outKey == "":
		return usagef("cert convert: --in, --out-cert and --out-key are required")
	case cn != "":
		if err := certs.CheckName(cn); err != nil {
			return usagef("--ssl-cname %q: %v", cn, err)
		}
	}
	opts := certs.LoadOptions{CName: cn}
	if caFile != "" {
		roots, err := certs.LoadRoots(caFile)
		if err != nil {
			return usageError{flagError(err)}
		}
		opts.Roots = roots
	}
	var inputs []certs.Input
	for _, name := range in {
		data, err := os.ReadFile(name)
		if err != nil {
			return usagef("--in %q: %v", name, errors.Unwrap(err))
		}
		inputs = append(inputs, certs.Input{Name: name, Data: data})
	}
	b, err := certs.ReadBundle(inputs, passwordFrom(pwFile, stdin))
	switch {
	case errors.Is(err, certs.ErrPasswordRequired):
		return usagef("%w; give it with --password-file FILE (or --password-file - to read it from stdin)", err)
	case errors.Is(err, certs.ErrWrongPassword) && pwFile != "":
		return usagef("%w; --password-file %q: its first line is the password, without the line ending", err, pwFile)
	case err != nil:
		return usageError{err}
	}
	if err := certs.WritePair(b, outCert, outKey, force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return usagef("%w; use --force to replace it", err)
		}
		return usageError{err}
	}
	for _, n := range b.Notes {
		fmt.Fprintln(stdout, n)
	}
	fmt.Fprintf(stdout, "wrote %s (the chain, leaf first) and %s (the key, mode 0600)\n\n", outCert, outKey)
	out := newCheckOutput(checkConfig{certFile: outCert, keyFile: outKey, cname: cn, caFile: caFile, convertIn: in, passwordFile: pwFile}, opts)
	writeReport(stdout, out)
	if !out.Valid {
		return exitError(exitFailure)
	}
	return nil
}

// passwordFrom returns a function that reads the first line of file, or
// of stdin for "-", without its line ending; nil when file is "".
func passwordFrom(file string, stdin io.Reader) func() ([]byte, error) {
	if file == "" {
		return nil
	}
	return func() ([]byte, error) {
		r := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, usagef("--password-file %q: %v", file, errors.Unwrap(err))
			}
			defer f.Close()
			r = f
		}
		line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, usagef("--password-file %q: %v", file, err)
		}
		return []byte(strings.TrimRight(line, "\r\n")), nil
	}
}
