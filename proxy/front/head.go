package front

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// writeField writes one header field line per value, as net/http does:
// names that are not valid tokens are dropped, and line breaks in values
// become spaces.
func writeField(bw *bufio.Writer, k string, vv []string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	for _, v := range vv {
		if strings.ContainsAny(v, "\r\n") {
			v = newlineToSpace.Replace(v)
		}
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(textproto.TrimString(v))
		bw.WriteString("\r\n")
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// statusLines are "HTTP/1.1 200 OK\r\n" and the like, by code.
var statusLines = func() (l [600]string) {
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" {
			l[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + t + "\r\n"
		}
	}
	return l
}()

func statusLine(code int) string {
	if code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

// date is the Date header's value for one second.
type date struct {
	sec int64
	s   string
}

var curDate atomic.Pointer[date]

func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := curDate.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &date{sec, now.UTC().Format(http.TimeFormat)}
	curDate.Store(d)
	return d.s
}
