// Package certs owns scoregate's TLS certificates: loading and validating a
// PEM certificate chain and private key (LoadPair), the SNI policy
// (SNIPolicy), serving the current pair to crypto/tls with atomic reloads
// and file watching (Source, Source.Watch, WatchFiles), obtaining and
// renewing one by ACME with certmagic (ACME: no order before the name
// resolves, storage checked at startup, External Account Binding), Azure
// ML's leaf_domain_label names (LeafDomainName, with Azure's regions
// checked by CheckRegion), the server's TLS settings with the SNI policy
// applied once around either source (ServerTLSConfig), what a source
// reports (Status) and the watch on its expiry (WatchExpiry), the
// classification of failed handshakes (HandshakeErrorReason,
// NewHandshakeErrorLog), development certificates (WriteDev), the report
// behind `scoregate check` (Check: the same checks as LoadPair, all of them
// reported), reading the files users hold — PKCS#12, DER, mixed PEM — into
// a chain and key (ReadBundle, WritePair), and the rules for the name
// clients use (CheckName).
//
// Counts live in the metrics package's collectors only; nothing here keeps
// a second count. Configuration problems are *ConfigErrors naming the Go
// field; a command maps fields to its flags.
//
// Validation happens once, when a pair is loaded, and every problem an
// operator can fix is reported as a *FileError that names the file and wraps
// one of the sentinel errors in errors.go. A Pair that passed validation is
// never mutated, so it can be shared freely between goroutines. All
// functions and methods in the package are safe for concurrent use.
//
// The directory watching itself lives in certs/filewatch.
package certs
