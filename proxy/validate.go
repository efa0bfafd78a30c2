package proxy

import (
	"errors"
	"fmt"
	"net/url"
)

// validServiceName reports whether name may name a service: a path
// segment that needs no escaping.
func validServiceName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return name != "." && name != ".."
}

func checkBackend(u *url.URL) error {
	if u == nil {
		return errors.New("proxy: Backend is required")
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("proxy: Backend %q: must be an absolute http, https or h2c URL", u.Redacted())
	}
	if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "h2c" {
		return fmt.Errorf("proxy: Backend %q: scheme must be http, https or h2c (HTTP/2 with prior knowledge, for gRPC)", u.Redacted())
	}
	return nil
}
