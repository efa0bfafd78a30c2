package certs

import "net"

// NewDNSResolver returns a resolver that asks server, over TCP, as the
// wait for DNS before an ACME order does (ACMEConfig.DNSResolver):
// server is "host:port", or an IP address alone for port 53, or "" for the
// system's resolver (net.DefaultResolver). A malformed server is a
// *ConfigError. `scoregate check --dns-resolver` uses it, so that the
// check asks the same server the ACME wait would.
func NewDNSResolver(server string) (*net.Resolver, error) {
	addr, err := parseDNSResolver(server)
	if err != nil {
		return nil, err
	}
	return newDNSResolver(addr), nil
}
