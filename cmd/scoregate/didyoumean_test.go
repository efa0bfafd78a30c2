package main

import (
	"strings"
	"testing"
)

// TestUnknownFlagSuggestions: an unknown flag gets the closest flags of its
// own subcommand, or nothing when none is close.
func TestUnknownFlagSuggestions(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string // after "scoregate: flag provided but not defined: -"
	}{
		{"a word left out", []string{"serve", "--ssl-cert-file", "x"}, "ssl-cert-file; did you mean --ssl-cert-pem-file?"},
		{"Azure ML's spelling", []string{"serve", "--ssl_cert_pem_file=x"}, "ssl_cert_pem_file; did you mean --ssl-cert-pem-file?"},
		{"upper case", []string{"serve", "-SSL_CNAME", "x"}, "SSL_CNAME; did you mean --ssl-cname?"},
		{"letters swapped", []string{"serve", "--ssl-cnmae", "x"}, "ssl-cnmae; did you mean --ssl-cname?"},
		{"a letter missing", []string{"serve", "--lisen", ":1"}, "lisen; did you mean --listen?"},
		{"a word shortened", []string{"serve", "--max-conns", "9"}, "max-conns; did you mean --max-connections or --max-connections-per-ip?"},
		{"a word mistyped", []string{"serve", "--sll-cert-pem", "x"}, "sll-cert-pem; did you mean --ssl-cert-pem-file?"},
		{"no- for a boolean", []string{"serve", "--no-watch"}, "no-watch; did you mean --watch=false?"},
		{"several alike", []string{"serve", "--key-file", "x"}, "key-file; did you mean --auth-key-file, --session-ticket-key-file or --ssl-key-pem-file?"},
		{"nothing close", []string{"serve", "--nope"}, "nope"},
		{"nothing close, short", []string{"serve", "-x"}, "x"},
		{"a word nothing has", []string{"serve", "--ssl-enabled"}, "ssl-enabled"},
		{"check", []string{"check", "--ca-fil", "x"}, "ca-fil; did you mean --ca-file?"},
		{"bench", []string{"bench", "--concurency", "2"}, "concurency; did you mean --concurrency?"},
		{"domain", []string{"domain", "--leaf-label", "x"}, "leaf-label; did you mean --leaf-domain-label?"},
		{"cert dev", []string{"cert", "dev", "--cname", "x"}, "cname; did you mean --ssl-cname?"},
		{"cert convert", []string{"cert", "convert", "--password", "x"}, "password; did you mean --password-file?"},
		{"only the subcommand's flags", []string{"domain", "--ssl-cert-file", "x"}, "ssl-cert-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if want := "scoregate: flag provided but not defined: -" + tt.want + "\n"; code != exitUsage || stderr != want || stdout != "" {
				t.Errorf("scoregate %q: exit %d, stdout %q, stderr %q; want exit 2 and stderr %q", tt.args, code, stdout, stderr, want)
			}
		})
	}
}

// TestClosestFlagsIsOneWay: a defined flag is its own closest match, so no
// suggestion ever names a flag farther than the one meant.
func TestClosestFlagsIsOneWay(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	for _, name := range []string{"listen", "ssl-cname", "max-connections", "watch"} {
		if got := closestFlags(fs, name); len(got) != 1 || got[0] != name {
			t.Errorf("closestFlags(%q) = %q, want just %q", name, got, name)
		}
	}
	if got := closestFlags(fs, strings.Repeat("z", 40)); got != nil {
		t.Errorf("closestFlags(40 z) = %q, want none", got)
	}
}
