// Command scoregate is a TLS front end for model-scoring containers.
//
// Run `scoregate help` for the subcommands and `scoregate serve --help` for
// the flags. Every flag can also be set from the environment as
// SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag given on the command line wins.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
