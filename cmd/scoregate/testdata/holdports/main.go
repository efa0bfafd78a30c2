// Command holdports holds TCP ports the way a busy machine does, so that
// CI can prove the test suite passes with them taken: for each port given,
// it listens on every address (the IPv6 wildcard, which takes IPv4 too
// where the system allows, and the IPv4 wildcard) and on 127.0.0.1, as far
// as the system lets one process do all of those. A port that some other
// process already has counts as held. Once all are held it prints one
// line starting with "holding" and waits until it is killed.
//
//	go build -o holdports ./cmd/scoregate/testdata/holdports
//	./holdports 8443 9090 9464 &
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: holdports PORT...")
		os.Exit(2)
	}
	var held []string
	var lns []net.Listener
	for _, p := range os.Args[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			fmt.Fprintf(os.Stderr, "holdports: %q: not a port\n", p)
			os.Exit(2)
		}
		var got []string
		for _, network := range []struct{ net, host string }{{"tcp", "::"}, {"tcp4", "0.0.0.0"}, {"tcp4", "127.0.0.1"}} {
			addr := net.JoinHostPort(network.host, p)
			ln, err := net.Listen(network.net, addr)
			if err != nil {
				continue // taken already (by this process's wildcard, or another's), or no IPv6
			}
			lns = append(lns, ln)
			got = append(got, ln.Addr().String())
		}
		// Whoever holds it, the port must now be unavailable on loopback.
		if ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", p)); err == nil {
			ln.Close()
			fmt.Fprintf(os.Stderr, "holdports: port %s is still free on 127.0.0.1\n", p)
			os.Exit(1)
		} else if !errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(os.Stderr, "holdports: port %s: %v\n", p, err)
			os.Exit(1)
		}
		if len(got) == 0 {
			got = []string{"taken by another process"}
		}
		held = append(held, p+" ("+strings.Join(got, ", ")+")")
	}
	fmt.Println("holding", strings.Join(held, "; "))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	for _, ln := range lns {
		ln.Close()
	}
}
