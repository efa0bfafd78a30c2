package main

import "testing"

func TestHandshakeReason(t *testing.T) {
	for _, tt := range []struct{ detail, want string }{
		{"127.0.0.1:5555: tls: no certificates configured", ""},
		{"127.0.0.1:5555: unrecognized server name", ""},
		{"127.0.0.1:5555: tls: client offered only unsupported versions: [302 301]", "protocol_version"},
		{"127.0.0.1:5555: tls: no cipher suite supported by both client and server", "no_shared_cipher"},
		{"127.0.0.1:5555: tls: first record does not look like a TLS handshake", "not_tls"},
		{"127.0.0.1:5555: local error: tls: bad record MAC", "bad_record"},
		{"127.0.0.1:5555: read tcp 127.0.0.1:8443->127.0.0.1:5555: i/o timeout", "timeout"},
		{"127.0.0.1:5555: read tcp 127.0.0.1:8443->127.0.0.1:5555: read: connection reset by peer", "reset"},
		{"127.0.0.1:5555: EOF", "eof"},
		{"127.0.0.1:5555: remote error: tls: bad certificate", "bad_certificate"},
		{"127.0.0.1:5555: something new", "other"},
	} {
		if got := handshakeReason(tt.detail); got != tt.want {
			t.Errorf("handshakeReason(%q) = %q, want %q", tt.detail, got, tt.want)
		}
	}
}
