package main

import (
	"cmp"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/scoregate/scoregate/certs"
)

// unknownFlag is how package flag words a flag it does not know; the name
// follows, without its value.
const unknownFlag = "flag provided but not defined: -"

// maxFlagSuggestions is how many flags one "did you mean" names.
const maxFlagSuggestions = 3

// suggestFlag adds "; did you mean --x?" to package flag's error for an
// unknown flag, naming the flags of fs closest to it; other errors, and
// unknown flags that nothing is close to, are returned as they are.
func suggestFlag(fs *flag.FlagSet, err error) error {
	name, ok := strings.CutPrefix(err.Error(), unknownFlag)
	if !ok {
		return err
	}
	near := closestFlags(fs, name)
	if len(near) == 0 {
		return err
	}
	for i, n := range near {
		near[i] = "--" + n
	}
	if len(near) > 1 {
		near = []string{strings.Join(near[:len(near)-1], ", "), near[len(near)-1]}
	}
	return fmt.Errorf("%w; did you mean %s?", err, strings.Join(near, " or "))
}

// closestFlags returns what the flags of fs that name was meant to be,
// best first, at most maxFlagSuggestions of them. Case and underscores do
// not count (Azure ML's names are ssl_cert_pem_file and the like), and it
// tries in turn:
//   - a typo: the flags the fewest edits away (certs.EditDistance), if
//     that is at most a third of name's length and at most 3 (one edit is
//     always allowed);
//   - no-X for a boolean flag X: X=false;
//   - words left out or shortened: each hyphen-separated word of name
//     begins a word of the flag (ssl-cert-file, ssl-cert-pem-file) or
//     abbreviates it (conns, connections), or is one edit from it, in
//     order; the flags with the fewest words beyond name's come first.
func closestFlags(fs *flag.FlagSet, name string) []string {
	name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })

	best := min(3, max(1, len(name)/3)) // the most edits allowed, then the fewest found
	var near []string
	for _, f := range flags {
		switch d := certs.EditDistance(name, f.Name); {
		case d > best:
		case d < best || len(near) == 0:
			best, near = d, []string{f.Name}
		case len(near) < maxFlagSuggestions:
			near = append(near, f.Name)
		}
	}
	if len(near) > 0 {
		return near
	}

	if b, ok := strings.CutPrefix(name, "no-"); ok {
		if f := fs.Lookup(b); f != nil && isBoolFlag(f) {
			return []string{b + "=false"}
		}
	}

	if len(name) < 3 {
		return nil
	}
	type match struct {
		name  string
		extra int
	}
	var ms []match
	words := strings.Split(name, "-")
	for _, f := range flags {
		if extra, ok := wordsMatch(words, strings.Split(f.Name, "-")); ok {
			ms = append(ms, match{f.Name, extra})
		}
	}
	slices.SortStableFunc(ms, func(a, b match) int { return cmp.Compare(a.extra, b.extra) })
	for _, m := range ms[:min(len(ms), maxFlagSuggestions)] {
		near = append(near, m.name)
	}
	return near
}

// wordsMatch reports whether each of words matches a word of flag, in
// order, and how many of flag's words are left over.
func wordsMatch(words, flag []string) (extra int, ok bool) {
	i := 0
	for _, w := range words {
		for i < len(flag) && !wordMatches(w, flag[i]) {
			i++
		}
		if i == len(flag) {
			return 0, false
		}
		i++
	}
	return len(flag) - len(words), true
}

// wordMatches reports whether w stands for the flag's word f: f itself,
// a prefix or abbreviation of it (its first letter, then some of its
// letters in order), or one edit from it.
func wordMatches(w, f string) bool {
	if w == "" || f == "" {
		return false
	}
	if w[0] == f[0] && isSubsequence(w, f) {
		return true
	}
	return len(w) >= 3 && certs.EditDistance(w, f) <= 1
}

// isSubsequence reports whether the bytes of a appear in b in order.
func isSubsequence(a, b string) bool {
	for i := 0; i < len(b) && a != ""; i++ {
		if b[i] == a[0] {
			a = a[1:]
		}
	}
	return a == ""
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
