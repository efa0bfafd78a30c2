package certs

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/scoregate/scoregate/metrics"
)

// Log fields of the refused-handshake lines, with keyReason
// (metrics.HandshakeUnrecognizedName or metrics.HandshakeMissingSNI).
const (
	keyServerName = "server_name" // the name the client asked for (SNI); "" for none
	keyClient     = "client"      // the client's address
	keyServed     = "served"      // the name the policy accepts
	keySuppressed = "suppressed"  // refusals of the same reason not logged since its last line
)

const (
	// refusalLogEvery is the least time between two warn lines of one
	// reason: the first refusal is logged at once, so that someone trying
	// a client sees what it asked for; a steady stream (a load balancer's
	// probes without SNI, a scanner) costs one line per reason this often.
	refusalLogEvery = 10 * time.Second
	// maxRefusalNames bounds the distinct names kept between summaries;
	// more are counted, not named (clients choose them).
	maxRefusalNames = 100
	// summaryNames is how many of them a summary names.
	summaryNames = 5
	// maxPending bounds the refusals waiting for their handshake error
	// line (see take).
	maxPending = 1024
	// maxNameLen bounds a logged name (DNS names are at most 253).
	maxNameLen = 255
)

// Refusals logs the TLS handshakes the SNI policy refuses with the server
// name the client asked for, the client's address and the reason, so that
// a client's "unrecognized name" can be traced to what it asked:
//
//   - a warn line at once, then at most one per reason every 10 seconds,
//     carrying the number of refusals of that reason left out since the
//     previous one ("suppressed");
//   - with Run, a summary every interval: the count per reason and the
//     names asked most often;
//   - NewHandshakeErrorLog, given the same Refusals, logs each refused
//     connection's failed handshake at debug level with the real reason,
//     where crypto/tls says only "no certificates configured".
//
// A session resumed for a refused name is refused after the handshake
// (see ServerTLSConfig), where crypto/tls gives no connection: those lines
// have no client address. Refusals are counted in the metrics whether or
// not they are logged here.
//
// Give it to ServerTLSConfig in SNIPolicy.Refusals. A nil *Refusals logs
// nothing. Its methods are safe for concurrent use.
type Refusals struct {
	log zerolog.Logger

	mu         sync.Mutex
	every      time.Duration         // refusalLogEvery; tests change it
	reasons    map[string]*reasonLog // by reason
	names      map[string]int        // asked names since the last summary, at most maxRefusalNames
	otherNames int                   // refusals since the last summary whose name did not fit in names
	pending    map[string]refusal    // by client address, until its handshake error line takes it
}

// reasonLog is what Refusals keeps per reason.
type reasonLog struct {
	logged     time.Time // the last warn line; zero before the first
	suppressed int       // refusals not logged since then
	count      int       // refusals since the last summary
}

// refusal is one refused handshake.
type refusal struct {
	reason, name, served string
}

// NewRefusals returns a Refusals that logs to log.
func NewRefusals(log zerolog.Logger) *Refusals {
	return &Refusals{log: log, every: refusalLogEvery, reasons: map[string]*reasonLog{}, names: map[string]int{}, pending: map[string]refusal{}}
}

// refused records one refusal: reason is metrics.HandshakeUnrecognizedName
// or metrics.HandshakeMissingSNI, name the server name asked ("" for
// none), served the policy's name, and client the client's address ("" if
// unknown).
func (r *Refusals) refused(reason, name, served, client string) {
	if r == nil {
		return
	}
	name = logName(name)
	now := time.Now()
	r.mu.Lock()
	rl := r.reasons[reason]
	if rl == nil {
		rl = &reasonLog{}
		r.reasons[reason] = rl
	}
	rl.count++
	if _, ok := r.names[name]; ok || len(r.names) < maxRefusalNames {
		r.names[name]++
	} else {
		r.otherNames++
	}
	if client != "" {
		if len(r.pending) >= maxPending {
			clear(r.pending) // lines that never came (an ErrorLog without this Refusals)
		}
		r.pending[client] = refusal{reason: reason, name: name, served: served}
	}
	every := r.every
	logIt := rl.logged.IsZero() || now.Sub(rl.logged) >= every
	suppressed := rl.suppressed
	if logIt {
		rl.logged, rl.suppressed = now, 0
	} else {
		rl.suppressed++
	}
	r.mu.Unlock()
	if !logIt {
		return
	}
	e := r.log.Warn().Str(keyReason, reason).Str(keyServerName, name).Str(keyServed, served)
	if client != "" {
		e = e.Str(keyClient, client)
	}
	if suppressed > 0 {
		e = e.Int(keySuppressed, suppressed)
	}
	e.Msg("refused a TLS handshake: " + refusalReason(reason, name, served) + "; logged at most once every " + every.String() + " per reason")
}

// refusalReason says why a handshake was refused, in words.
func refusalReason(reason, name, served string) string {
	if reason == metrics.HandshakeMissingSNI {
		return "the client named no server (SNI), and the policy requires " + strconv.Quote(served) + " (the client sees unrecognized_name)"
	}
	return "the client asked for " + strconv.Quote(name) + ", not " + strconv.Quote(served) + " (the client sees unrecognized_name)"
}

// take returns and forgets the refusal of the connection from client, for
// its handshake error line.
func (r *Refusals) take(client string) (refusal, bool) {
	if r == nil {
		return refusal{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.pending[client]
	delete(r.pending, client)
	return f, ok
}

// Run logs a summary of the refusals every interval until ctx is done,
// when there were any: one warn line with the count per reason
// (unrecognized_name, missing_sni), the interval, and the names asked most
// often with their counts (names; other_names counts the refusals of the
// names left out). Run on a nil *Refusals returns when ctx is done.
func (r *Refusals) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.summarize(every)
	}
}

// summarize logs and resets the counts since the last summary.
func (r *Refusals) summarize(every time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	counts := map[string]int{}
	for reason, rl := range r.reasons {
		counts[reason], rl.count = rl.count, 0
	}
	type named struct {
		name string
		n    int
	}
	var top []named
	for name, n := range r.names {
		top = append(top, named{name, n})
	}
	other := r.otherNames
	clear(r.names)
	r.otherNames = 0
	r.mu.Unlock()

	if counts[metrics.HandshakeUnrecognizedName]+counts[metrics.HandshakeMissingSNI] == 0 {
		return
	}
	slices.SortFunc(top, func(a, b named) int { return cmp.Or(b.n-a.n, cmp.Compare(a.name, b.name)) })
	for _, n := range top[min(summaryNames, len(top)):] {
		other += n.n
	}
	names := zerolog.Dict()
	for _, n := range top[:min(summaryNames, len(top))] {
		names = names.Int(n.name, n.n)
	}
	e := r.log.Warn().Int(metrics.HandshakeUnrecognizedName, counts[metrics.HandshakeUnrecognizedName]).
		Int(metrics.HandshakeMissingSNI, counts[metrics.HandshakeMissingSNI]).
		Dur("interval", every).Dict("names", names)
	if other > 0 {
		e = e.Int("other_names", other)
	}
	e.Msg("refused TLS handshakes for other server names or without SNI; names: the server names asked most often (\"\" for none) and how often")
}

// logName is a client's server name as it is logged: cut to maxNameLen,
// and quoted (Go syntax, ASCII only) if it holds anything but printable
// ASCII, so that a log viewer shows what was sent rather than
// interpreting it.
func logName(name string) string {
	if len(name) > maxNameLen {
		name = name[:maxNameLen] + "..."
	}
	for i := range len(name) {
		if c := name[i]; c < 0x20 || c > 0x7e {
			return strconv.QuoteToASCII(name)
		}
	}
	return name
}
