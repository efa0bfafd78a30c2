package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/scoregate/scoregate/bench"
	"github.com/scoregate/scoregate/certs"
)

// benchConfig is everything `scoregate bench` reads from its flags.
type benchConfig struct {
	url, connect, caFile, compareURL string
	insecure                         bool
	scenario, method                 string
	concurrency, h2Conns, h2Streams  int
	rate                             float64
	duration, warmup, timeout        time.Duration
	bodyBytes                        byteSize
	backendLatency                   time.Duration
	json                             bool
	html                             string
	idle                             int
	serverPID                        int    // with --idle
	serverMetrics                    string // with --idle
	alternations                     int
	given                            map[string]bool // flags set on the command line or from the environment
}

const benchUsage = `Usage: scoregate bench [flags]

Load-tests a scoring endpoint and prints throughput, latency percentiles and
errors by kind.

With --url, it measures that endpoint (and, with --compare-url, a baseline
such as the backend behind it). Without --url, it starts scoregate in this
process, with --dev certificates in front of the synthetic scoring backend,
and measures h1 and h2 both through scoregate and straight to the backend:
the difference is the latency scoregate adds.

Scenarios: handshake (a new connection and a full TLS handshake per
request), resume (the same with session resumption), h1 (keep-alive
HTTP/1.1), h2 (HTTP/2, --h2-conns x --h2-streams). Closed loop by default;
--rate makes it open loop, timing each request from when it was due.
--alternations N with --rate runs the two targets in turn, N times each,
and reports the median and spread of the latency scoregate adds.

Flags (each also read from SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag wins):
`

func benchFlags(c *benchConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", "", "target `URL`, such as https://score.example.com/score; its host is the TLS server name and the Host header (default: an in-process scoregate)")
	fs.StringVar(&c.connect, "connect", "", "`host:port` to connect to instead of the URL's host; SNI and Host stay the URL's")
	fs.StringVar(&c.caFile, "ca-file", "", "trusted root certificates, PEM `file` (default: the system roots)")
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify the server's certificate (cheaper for the client, as wrk and h2load do)")
	fs.StringVar(&c.compareURL, "compare-url", "", "with --url: also measure this `URL` (such as the backend, http://127.0.0.1:5001/score), connecting to its own host, and show the latency --url adds over it")
	fs.StringVar(&c.scenario, "scenario", string(bench.H1), "the `kind` of request: handshake (each on a new connection, full TLS handshake), resume (the same, resumed TLS session), h1 or h2 (keep-alive)")
	fs.IntVar(&c.concurrency, "concurrency", bench.DefaultConcurrency, "`workers`, each with one request in flight (h1: one connection each); not used by h2")
	fs.Float64Var(&c.rate, "rate", 0, "open loop: send this many `requests` per second on a fixed schedule, timing each from when it was due (default: closed loop)")
	fs.IntVar(&c.h2Conns, "h2-conns", bench.DefaultH2Conns, "h2: `connections`")
	fs.IntVar(&c.h2Streams, "h2-streams", bench.DefaultH2Streams, "h2: concurrent `streams` per connection")
	fs.DurationVar(&c.duration, "duration", bench.DefaultDuration, "measured time")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "load before the measured time, not counted")
	fs.DurationVar(&c.timeout, "timeout", bench.DefaultTimeout, "per request, connecting included; slower counts as a timeout error")
	c.bodyBytes = bench.DefaultBodyBytes
	fs.Var(&c.bodyBytes, "body-bytes", "JSON request body `size` (the default is the peers kit's 110-feature scoring request)")
	fs.StringVar(&c.method, "method", "POST", "request `method`; GET and HEAD send no body")
	fs.DurationVar(&c.backendLatency, "backend-latency", 0, "without --url: latency the synthetic backend adds to each POST /score")
	fs.IntVar(&c.alternations, "alternations", 1, "with two targets (no --url and --scenario h1 or h2, or --url and --compare-url) and --rate: measure them alternately this many `times` each, and report the median and spread of the p50, p99 and p99.9 latency the first adds")
	fs.IntVar(&c.idle, "idle", 0, "instead of a load test: open this many `connections` (TLS handshake and one request each), hold them idle for --duration, then close them; with --server-pid or --server-metrics, report the server's memory per connection")
	fs.IntVar(&c.serverPID, "server-pid", 0, "with --idle: the server's process `ID`; report its resident memory (VmRSS in /proc/PID/status, Linux) per idle connection")
	fs.StringVar(&c.serverMetrics, "server-metrics", "", "with --idle: the server's Prometheus `URL`, such as scoregate's http://127.0.0.1:9464/metrics; report its Go heap and stacks in use per idle connection")
	fs.BoolVar(&c.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&c.html, "html", "", "also write a self-contained HTML report with a latency plot to `file`")
	return fs
}

// parseBench reads flags, then the environment, and checks them.
func parseBench(args []string, getenv func(string) (string, bool), stdout io.Writer) (benchConfig, error) {
	var c benchConfig
	given, err := parseFlags(benchFlags(&c), args, getenv, stdout, benchUsage)
	if err != nil {
		return c, err
	}
	c.given = given
	return c, c.check()
}

func (c *benchConfig) check() error {
	known := false
	for _, s := range bench.Scenarios {
		known = known || c.scenario == string(s)
	}
	if !known {
		return usagef("--scenario %q: want handshake, resume, h1 or h2", c.scenario)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"concurrency", c.concurrency}, {"h2-conns", c.h2Conns}, {"h2-streams", c.h2Streams}, {"alternations", c.alternations}} {
		if f.v < 1 {
			return usagef("--%s %d: want at least 1", f.name, f.v)
		}
	}
	if c.rate < 0 || c.rate != c.rate {
		return usagef("--rate %v: want requests per second, or 0 for a closed loop", c.rate)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"duration", c.duration}, {"timeout", c.timeout}} {
		if d.v <= 0 {
			return usagef("--%s %s: want a positive duration such as 10s", d.name, d.v)
		}
	}
	if c.warmup < 0 || c.backendLatency < 0 {
		return usagef("--warmup and --backend-latency must not be negative")
	}
	if c.bodyBytes > 64<<20 {
		return usagef("--body-bytes %s: want at most 64MiB", &c.bodyBytes)
	}
	if c.insecure && c.caFile != "" {
		return usagef("--insecure and --ca-file exclude each other: verify against the file, or not at all")
	}
	for _, f := range []struct{ name, v string }{{"url", c.url}, {"compare-url", c.compareURL}} {
		if f.v == "" {
			continue
		}
		u, err := url.Parse(f.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
			return usagef("--%s %q: want an https:// (or http://) URL such as https://score.example.com/score", f.name, f.v)
		}
		if u.Scheme == "http" && (c.scenario == string(bench.Handshake) || c.scenario == string(bench.Resume)) {
			return usagef("--%s %q: --scenario %s needs an https:// URL", f.name, f.v, c.scenario)
		}
	}
	if c.connect != "" {
		if _, _, err := net.SplitHostPort(c.connect); err != nil {
			return usagef("--connect %q: want host:port such as 127.0.0.1:8443", c.connect)
		}
	}
	if c.alternations > 1 {
		if c.rate == 0 {
			// A closed loop's latency follows its throughput, which
			// differs between the targets; only a shared schedule
			// compares them.
			return usagef("--alternations %d needs --rate: try half the throughput of a closed-loop run", c.alternations)
		}
		if (c.url == "" && c.scenario != string(bench.H1) && c.scenario != string(bench.H2)) || (c.url != "" && c.compareURL == "") {
			return usagef("--alternations %d needs two targets: --scenario h1 or h2 without --url, or --url with --compare-url", c.alternations)
		}
	}
	if err := c.checkIdle(); err != nil {
		return err
	}
	if c.url == "" {
		for _, name := range []string{"compare-url", "connect"} {
			if c.given[name] {
				return usagef("--%s needs --url", name)
			}
		}
	} else if c.given["backend-latency"] {
		return usagef("--backend-latency applies to the in-process backend only, not to --url")
	}
	return nil
}

// config returns the bench.Config common to every run.
func (c *benchConfig) config() bench.Config {
	return bench.Config{
		Insecure:    c.insecure,
		Scenario:    bench.Scenario(c.scenario),
		Concurrency: c.concurrency,
		Rate:        c.rate,
		H2Conns:     c.h2Conns,
		H2Streams:   c.h2Streams,
		Duration:    c.duration,
		Warmup:      c.warmup,
		Timeout:     c.timeout,
		Method:      c.method,
		BodyBytes:   int(c.bodyBytes),
	}
}

// benchTarget is one run to make: its label, URL and the address to dial
// (empty: the URL's host).
type benchTarget struct {
	label, url, connect string
}

func runBench(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	c, err := parseBench(args, getenv, stdout)
	if err != nil {
		return err
	}
	base := c.config()
	if c.caFile != "" {
		if base.RootCAs, err = certs.LoadRoots(c.caFile); err != nil {
			return usagef("--ca-file: %w", err)
		}
	}

	if c.idle > 0 {
		return holdIdle(ctx, c, base, stdout, stderr)
	}

	var targets []benchTarget
	if c.url != "" {
		targets = append(targets, benchTarget{label: hostOf(c.url), url: c.url, connect: c.connect})
		if c.compareURL != "" {
			label := hostOf(c.compareURL)
			if label == targets[0].label {
				label += " (compare)"
			}
			targets = append(targets, benchTarget{label: label, url: c.compareURL})
		}
	} else {
		ip, err := startInProcess(c, stderr)
		if err != nil {
			return err
		}
		defer ip.stop()
		base.RootCAs = ip.roots
		targets = append(targets, benchTarget{label: "scoregate", url: ip.url, connect: ip.tlsAddr})
		if c.scenario == string(bench.H1) || c.scenario == string(bench.H2) {
			targets = append(targets, benchTarget{label: "direct backend", url: ip.backendURL})
		}
	}

	// With --alternations N the two targets take turns, N runs each, so
	// that drift on the machine falls on both alike (check made sure there
	// are two).
	var results []*bench.Result
run:
	for i := range c.alternations {
		for _, t := range targets {
			if ctx.Err() != nil {
				break run
			}
			cfg := base
			cfg.URL, _ = url.Parse(t.url) // checked by check
			cfg.Connect, cfg.Label = t.connect, t.label
			if c.alternations > 1 {
				cfg.Label = fmt.Sprintf("%s #%d", t.label, i+1)
			}
			r, err := bench.Run(ctx, cfg, stderr)
			if errors.Is(err, bench.ErrInvalidConfig) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	if len(results) == 0 {
		return errors.New("bench: interrupted before any measurement")
	}

	var alt *bench.AddedSpread
	if c.alternations > 1 {
		var runs, baselines []*bench.Result
		for i, r := range results {
			if i%2 == 0 {
				runs = append(runs, r)
			} else {
				baselines = append(baselines, r)
			}
		}
		a := bench.Alternated(targets[0].label, targets[1].label, runs, baselines)
		alt = &a
	}
	if err := writeBenchOutput(c, results, alt, stdout); err != nil {
		return err
	}
	if c.html != "" {
		if err := writeBenchHTML(c, results); err != nil {
			return err
		}
	}
	for _, r := range results {
		if r.Requests == 0 {
			return fmt.Errorf("bench: no request to %s succeeded; first error: %s", r.URL, r.Errors.First)
		}
	}
	if ctx.Err() != nil {
		return errors.New("bench: interrupted; the figures cover the part that ran")
	}
	return nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

// benchReport is the --json output.
type benchReport struct {
	Results []*bench.Result `json:"results"`
	// Added is the latency the first result adds over the second: with no
	// --url, scoregate over the direct backend; with --compare-url, --url
	// over it.
	Added *bench.Latency `json:"added,omitempty"`
	// Alternated, with --alternations above 1, summarises the latency the
	// first target adds over the second across the alternations; Results
	// then holds the runs in the order they were made, the targets taking
	// turns.
	Alternated *bench.AddedSpread `json:"alternated,omitempty"`
}

func signed(d time.Duration) string {
	s := d.Round(10 * time.Microsecond).String()
	if d >= 0 {
		return "+" + s
	}
	return s
}

func writeBenchHTML(c benchConfig, results []*bench.Result) error {
	loop := "closed loop"
	if c.rate > 0 {
		loop = fmt.Sprintf("open loop at %v requests/s", c.rate)
	}
	title := fmt.Sprintf("scoregate bench: %s, %s", c.scenario, loop)
	f, err := os.Create(c.html)
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := bench.WriteHTML(f, title, results...); err != nil {
		f.Close()
		return fmt.Errorf("--html %q: %w", c.html, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--html %q: %w", c.html, err)
	}
	return nil
}
