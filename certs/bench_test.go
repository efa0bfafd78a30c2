package certs_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/certs"
	"github.com/scoregate/scoregate/certs/certstest"
)

// BenchmarkHandshake measures one TLS 1.3 handshake, both sides in this
// process over net.Pipe (so no syscalls or TCP: the crypto and crypto/tls
// work only), with scoregate's server config and a certs.Source. The
// client offers X25519 only and skips certificate verification, as wrk,
// h2load and the peers kit's hsload do, so that the figure is mostly the
// server's: compare with the peers kit's limits/ (server side alone).
//
//   - full: no client session cache, so a certificate and a signature.
//   - resumed: a PSK from a session ticket, with an X25519 exchange; every
//     iteration checks that it did resume.
func BenchmarkHandshake(b *testing.B) {
	for _, key := range []string{"ecdsa-p256", "rsa-2048"} {
		src := benchSource(b, key)
		for _, resumed := range []bool{false, true} {
			name := key + "/full"
			if resumed {
				name = key + "/resumed"
			}
			b.Run(name, func(b *testing.B) {
				server := certs.ServerTLSConfig(src, certs.SNIPolicy{CName: cname}, nil)
				client := &tls.Config{
					ServerName:         cname,
					InsecureSkipVerify: true,
					CurvePreferences:   []tls.CurveID{tls.X25519},
					MinVersion:         tls.VersionTLS13,
				}
				if resumed {
					client.ClientSessionCache = tls.NewLRUClientSessionCache(1)
					handshake(b, server, client) // gets the first ticket
				}
				b.ReportAllocs()
				for b.Loop() {
					if cs := handshake(b, server, client); cs.DidResume != resumed {
						b.Fatalf("DidResume = %v, want %v", cs.DidResume, resumed)
					}
				}
			})
		}
	}
}

// benchSource returns a Source serving a root -> intermediate -> leaf chain
// for cname, with a leaf key of keyType.
func benchSource(b *testing.B, keyType string) *certs.Source {
	b.Helper()
	dir := b.TempDir()
	inter := certstest.NewRootCA(b, "Test Root").Intermediate(b, "Test Intermediate")
	leaf := inter.Leaf(b, certstest.LeafOptions{DNSNames: []string{cname}, KeyType: keyType})
	src, err := certs.NewSource(certs.SourceConfig{
		CertFile: certstest.WriteChain(b, dir, "chain.pem", leaf.CertPEM, inter.CertPEM),
		KeyFile:  certstest.WriteFile(b, dir, "key.pem", leaf.KeyPEM),
		CName:    cname,
	}, zerolog.Nop())
	if err != nil {
		b.Fatalf("NewSource: %v", err)
	}
	return src
}

// handshake runs one handshake between a client and a server over
// net.Pipe. The server then sends one byte, which the client reads, so that
// the TLS 1.3 session ticket (sent after the handshake) reaches the client's
// session cache.
func handshake(b *testing.B, server, client *tls.Config) tls.ConnectionState {
	b.Helper()
	c, s := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		defer s.Close()
		srv := tls.Server(s, server)
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte{'x'})
		}
		errc <- err
	}()
	cl := tls.Client(c, client)
	err := cl.Handshake()
	if err == nil {
		_, err = io.ReadFull(cl, make([]byte, 1))
	}
	cs := cl.ConnectionState()
	c.Close()
	if serr := <-errc; err != nil || serr != nil {
		b.Fatalf("handshake: client: %v; server: %v", err, serr)
	}
	return cs
}
