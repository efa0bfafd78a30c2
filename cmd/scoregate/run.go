package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scoregate/scoregate/metrics"
)

// Exit codes. run maps errors to them in one place.
const (
	exitOK      = 0
	exitFailure = 1 // the server failed while running
	exitUsage   = 2 // bad flags, bad configuration, unusable certificate
)

// usageError is a configuration problem: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

const topUsage = `scoregate: a TLS front end for model-scoring containers.

Usage:
  scoregate serve [flags]        terminate TLS and forward to the scoring backend
  scoregate check [flags]        check a certificate and key as serve would, and say what to fix
  scoregate domain [flags]       draw the --leaf-domain-label name before the deploy, and say where it goes
  scoregate cert dev [flags]     make a development CA and certificate
  scoregate cert convert [flags] turn a .pfx/.p12, DER or mixed PEM into the files serve reads
  scoregate bench [flags]        load-test scoregate (in-process) or any HTTPS endpoint
  scoregate version              print the version
  scoregate help                 show this help

Run "scoregate serve --help" for the flags. Every flag can also be set from the
environment as SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag on the command line wins.
`

// run is the whole program: it returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, getenv, stdout, stderr)
	case "bench":
		err = runBench(ctx, rest, getenv, stdout, stderr)
	case "check":
		err = runCheck(ctx, rest, getenv, stdout)
	case "cert":
		err = runCert(rest, getenv, os.Stdin, stdout, stderr)
	case "domain":
		err = runDomain(rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "scoregate", version())
		return exitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, topUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "scoregate: unknown command %q; run \"scoregate help\"\n", cmd)
		return exitUsage
	}
	if e, ok := errors.AsType[exitError](err); ok {
		return int(e)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "scoregate: %s\n", oneLine(err.Error()))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "scoregate: %s\n", oneLine(err.Error()))
		return exitFailure
	}
}

// oneLine keeps an error to the one line the operator reads, even when it
// joins several (errors.Join separates them with newlines).
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// version is scoregate's version, as metrics.Version and the build info
// metric report it.
func version() string { return metrics.Version() }
