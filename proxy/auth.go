package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"sync/atomic"
)

// KeySet holds the bearer keys a request must present (Azure ML's key
// model: a primary and a secondary key, either of which is accepted). Store
// swaps the whole set atomically, so a rotation never fails a request that
// carries a key valid both before and after it. Create it with NewKeySet;
// it is safe for concurrent use.
type KeySet struct {
	sums atomic.Pointer[[][sha256.Size]byte] // SHA-256 of each key
}

// NewKeySet returns a KeySet holding keys.
func NewKeySet(keys []string) *KeySet {
	k := &KeySet{}
	k.Store(keys)
	return k
}

// Store replaces the keys. An empty set refuses every request.
func (k *KeySet) Store(keys []string) {
	sums := make([][sha256.Size]byte, len(keys))
	for i, key := range keys {
		sums[i] = sha256.Sum256([]byte(key))
	}
	k.sums.Store(&sums)
}

// Authorized reports whether the Authorization header value is
// "Bearer <key>" for one of the keys. Keys are compared by their SHA-256
// in constant time, so neither a key's content nor its length leaks
// through timing, and every key is compared whatever the outcome.
func (k *KeySet) Authorized(authorization string) bool {
	const scheme = "bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return false
	}
	got := sha256.Sum256([]byte(authorization[len(scheme):]))
	ok := 0
	for _, want := range *k.sums.Load() {
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1
}
