package proxy

import (
	"net/http"
	"strings"
)

// Redirect returns the handler for the optional plain-HTTP listener
// (--http-listen). It applies the Host policy of [CheckHost] exactly as the
// TLS side does (421 for another name, 400 for an empty or malformed Host,
// as JSON from [WriteError]) and answers everything else with 308 Permanent
// Redirect to https://<cname>[:httpsPort]<path>[?<query>], keeping the
// method and body. The port is left out when httpsPort is "" or "443".
//
// cname must be a well-formed name and httpsPort empty or a decimal port;
// the caller validates both (as New does for Config.CName). The handler is
// safe for concurrent use.
func Redirect(cname, httpsPort string) http.Handler {
	cname = strings.ToLower(strings.TrimSuffix(cname, "."))
	prefix := "https://" + cname
	if httpsPort != "" && httpsPort != "443" {
		prefix += ":" + httpsPort
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, err := CheckHost(r.Host, cname); err != nil {
			ids, _, _ := readRequestIDs(r.Header)
			ids.set(w.Header())
			WriteError(w, status, err.Error(), ids.id)
			return
		}
		path := r.URL.EscapedPath()
		if !strings.HasPrefix(path, "/") {
			path = "/" // "" from CONNECT, "*" from OPTIONS *
		}
		target := prefix + path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		// The Location is absolute, so http.Redirect uses it as it is.
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
}
