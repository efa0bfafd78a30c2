package bench

import "errors"

// ErrInvalidConfig is wrapped by the error Run returns when its Config is
// unusable (no URL, an unknown scenario, a negative duration, ...), so that
// callers can tell a configuration mistake from a failed run.
var ErrInvalidConfig = errors.New("bench: invalid config")
