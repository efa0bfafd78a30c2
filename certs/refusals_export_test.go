package certs

import "time"

// SetRefusalLogEvery sets the least time between two warn lines of one
// reason, for tests that need the second line (10 s otherwise).
func SetRefusalLogEvery(r *Refusals, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.every = d
}
