// Package certstest mints certificates and keys for tests, as
// net/http/httptest provides servers: a root CA, intermediates, leaves with
// any validity window and key type, and the key encodings operators meet in
// practice (PKCS#1, SEC1, PKCS#8, and both encrypted forms).
//
// Everything is generated fresh per test and written into a directory the
// test owns, usually t.TempDir(). Helpers take a testing.TB and call
// t.Fatal on failure, so they must be called from the test's goroutine.
// Values returned by the helpers are safe for concurrent reads.
//
// certstest is for tests only; production code must not import it.
package certstest
