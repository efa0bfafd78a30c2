package certs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Leaf-domain-label naming, as Azure ML's leaf_domain_label did it.
const (
	// leafDomainFile is the file in the storage directory that keeps the
	// derived name, one line.
	leafDomainFile = "leaf-domain-name"
	// leafSuffixLen is the number of random [a-z0-9] characters appended
	// to the label.
	leafSuffixLen = 6
	// leafParent follows the region.
	leafParent = "cloudapp.azure.com"
	// maxLabelLen is the longest DNS label (RFC 1035).
	maxLabelLen = 63
	// leafSuffixAlphabet is what the random suffix is drawn from.
	leafSuffixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	// leafReadPatience is how long a losing writer waits for the winner's
	// name to be complete (only without hard links; see
	// createFileExclusive).
	leafReadPatience = 2 * time.Second
)

// errIncomplete marks a name file that is still being written.
var errIncomplete = errors.New("incomplete or malformed")

// Errors about the stored leaf domain name, for a caller that knows how
// the operator draws a new one (LeafDomainOptions.Overwrite).
var (
	// ErrLeafDomainMismatch: the stored name was made from another label
	// or region.
	ErrLeafDomainMismatch = errors.New("the stored name was made from another label or region")
	// ErrLeafDomainIncomplete: the stored name file is incomplete or
	// malformed.
	ErrLeafDomainIncomplete = errIncomplete
)

// LeafOverwrite says what LeafDomainName does with a name already stored.
type LeafOverwrite int

const (
	// LeafKeep reuses the stored name. A stored name drawn for another
	// label or region is an error wrapping ErrLeafDomainMismatch: the name
	// DNS points at never changes silently.
	LeafKeep LeafOverwrite = iota
	// LeafReplaceOtherLabel (serve --overwrite-existing-domain, Azure ML's
	// meaning: the label changed) keeps a stored name drawn for this label
	// and region, and replaces one drawn for another label or region with
	// a new name, once: every call that finds the same stale name, at the
	// same time or later, in one process or many sharing the storage,
	// ends with the same new name. Restarts keep it.
	LeafReplaceOtherLabel
	// LeafDrawNew (scoregate domain --overwrite-existing-domain) always
	// draws a new suffix and replaces the stored name: the explicit
	// one-time action, not one for every process start.
	LeafDrawNew
)

// LeafDomainOptions are LeafDomainName's choices. The zero value keeps a
// stored name and checks the region against CheckRegion's list.
type LeafDomainOptions struct {
	Overwrite LeafOverwrite // if zero, LeafKeep
	// AllowUnknownRegion skips CheckRegion, for a region newer than its
	// list. The region must still be a DNS label.
	AllowUnknownRegion bool
}

// LeafDomain is the name LeafDomainName returns and how it came about.
type LeafDomain struct {
	Name   string // Label + Suffix + "." + Region + ".cloudapp.azure.com"
	Label  string // lowercased
	Suffix string // the 6 random characters [a-z0-9]
	Region string // lowercased
	// Drawn is true if this call drew Name; false if it read a stored
	// name, including one a concurrent caller drew.
	Drawn bool
	// Replaced is the stored name this call replaced (LeafDrawNew, or
	// LeafReplaceOtherLabel finding another label's name); "" if none.
	// Concurrent LeafReplaceOtherLabel calls may each report it.
	Replaced string
}

// DNSLabel returns the first label of Name, Label + Suffix: the value of
// the public IP's DNS name label (AKS: the Service annotation
// service.beta.kubernetes.io/azure-dns-label-name).
func (d LeafDomain) DNSLabel() string { return d.Label + d.Suffix }

// LeafDomainName returns the DNS name LABEL + 6 random [a-z0-9] + "." +
// REGION + ".cloudapp.azure.com", the scheme of Azure ML's
// leaf_domain_label, and keeps it in storageDir so that restarts and every
// instance sharing storageDir use the same name.
//
// label and region are lowercased. label must be a DNS label (letters,
// digits and hyphens, neither starting nor ending with a hyphen) of at
// most 57 characters, so that it fits in one 63-character DNS label with
// the suffix. region must pass CheckRegion, or with
// opts.AllowUnknownRegion be a DNS label. Errors are *ConfigErrors for
// the fields "Label", "Region" (wrapping ErrUnknownRegion for a region
// not in the list) and "Storage" (storageDir is empty, or cannot be
// created with mode 0700, read or written; the stored file is damaged,
// wrapping ErrLeafDomainIncomplete); a stored name for another label or
// region is a *ConfigError for "Label" (or "Region" when only the region
// differs) wrapping ErrLeafDomainMismatch, naming both.
//
// opts.Overwrite says what happens to a stored name: see LeafKeep,
// LeafReplaceOtherLabel and LeafDrawNew. A damaged file is replaced only
// by LeafDrawNew: it may be a name another instance is writing right now
// (on a file system without hard links).
//
// Files in storageDir: leaf-domain-name holds the name, one line. It is
// created with a hard link of a complete, synced temporary file, which
// fails if it exists, so that concurrent callers on a fresh directory
// agree on one name: the first link wins and the others read it.
// LeafReplaceOtherLabel keys the replacement by the stale name: the first
// caller to find stale name OLD creates leaf-domain-name.after-OLD the
// same way, holding the new name, and every caller that found OLD installs
// that one name in leaf-domain-name (by rename, atomically). The .after-
// files stay as the record of what replaced what; they are a few bytes
// each, and can be deleted once no instance still runs with the old label.
// LeafDrawNew replaces leaf-domain-name by rename.
//
// LeafDomainName is safe for concurrent use, within a process and across
// processes sharing storageDir.
func LeafDomainName(storageDir, label, region string, opts LeafDomainOptions) (LeafDomain, error) {
	label, region = strings.ToLower(label), strings.ToLower(region)
	if err := checkDNSLabel(label, maxLabelLen-leafSuffixLen); err != nil {
		return LeafDomain{}, &ConfigError{Field: "Label", Value: label, Err: err}
	}
	if err := checkLeafRegion(region, opts.AllowUnknownRegion); err != nil {
		return LeafDomain{}, err
	}
	if storageDir == "" {
		return LeafDomain{}, &ConfigError{Field: "Storage", Err: errRequired}
	}
	if err := os.MkdirAll(storageDir, 0o700); err != nil {
		return LeafDomain{}, &ConfigError{Field: "Storage", Value: storageDir, Err: err}
	}
	s := leafStore{dir: storageDir, path: filepath.Join(storageDir, leafDomainFile), label: label, region: region}
	switch opts.Overwrite {
	case LeafKeep:
		return s.get(false)
	case LeafReplaceOtherLabel:
		return s.get(true)
	case LeafDrawNew:
		return s.drawNew()
	}
	return LeafDomain{}, fmt.Errorf("certs: LeafDomainName: unknown LeafOverwrite %d", opts.Overwrite)
}

// checkLeafRegion checks the region of a leaf domain name.
func checkLeafRegion(region string, allowUnknown bool) error {
	switch {
	case region == "":
		return &ConfigError{Field: "Region", Err: errors.New("must not be empty")}
	case !allowUnknown:
		if err := CheckRegion(region); err != nil {
			// The message names the region already.
			return &ConfigError{Field: "Region", Err: err}
		}
	default:
		if err := checkDNSLabel(region, maxLabelLen); err != nil {
			return &ConfigError{Field: "Region", Value: region, Err: err}
		}
	}
	return nil
}

// maxLeafAttempts bounds LeafReplaceOtherLabel's re-reads of a name file
// that other callers keep changing.
const maxLeafAttempts = 10

// leafStore is one LeafDomainName call's storage and the name it wants.
type leafStore struct {
	dir, path     string // the storage directory and its leaf-domain-name
	label, region string
}

// get returns the stored name, drawing one if there is none. With
// replaceOther, a name for another label or region is replaced once (see
// LeafReplaceOtherLabel); without, it is an error.
func (s leafStore) get(replaceOther bool) (LeafDomain, error) {
	var successor LeafDomain // what this call installed or found for a stale name
	for range maxLeafAttempts {
		stored, err := readLeafDomainName(s.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return s.claim(s.path)
		case err != nil:
			return LeafDomain{}, s.readError(err)
		}
		if d, ok := s.parse(stored); ok {
			if stored == successor.Name {
				return successor, nil // another caller installed it first
			}
			return d, nil
		}
		if !replaceOther {
			return LeafDomain{}, s.mismatch(s.path, stored)
		}
		// stored was drawn for another label or region. Every caller that
		// finds it agrees on its successor: the first to create the
		// .after- file for it draws it, the others read it.
		successor, err = s.claim(s.successorPath(stored))
		if err != nil {
			return LeafDomain{}, err
		}
		successor.Replaced = stored
		// Install the successor, unless the name file changed meanwhile:
		// then look again (it is most likely the successor already).
		if now, err := readLeafDomainName(s.path); err != nil || now != stored {
			continue
		}
		if err := writeFileAtomic(s.path, []byte(successor.Name+"\n"), 0o644); err != nil {
			return LeafDomain{}, s.writeError(err)
		}
		return successor, nil
	}
	return LeafDomain{}, &ConfigError{Field: "Storage", Value: s.dir, Err: fmt.Errorf("%s kept changing while it was read; is another label's instance replacing it?", leafDomainFile)}
}

// drawNew draws a new name and replaces the stored one, whatever it was.
func (s leafStore) drawNew() (LeafDomain, error) {
	old, _ := readLeafDomainName(s.path) // for Replaced; a missing or damaged file replaces no name
	d, err := s.draw()
	if err != nil {
		return LeafDomain{}, err
	}
	if err := writeFileAtomic(s.path, []byte(d.Name+"\n"), 0o644); err != nil {
		return LeafDomain{}, s.writeError(err)
	}
	d.Replaced = old
	return d, nil
}

// claim draws a name and creates file with it if file does not exist yet.
// Either way it returns the name file then holds, which must be one for
// the label and region.
func (s leafStore) claim(file string) (LeafDomain, error) {
	d, err := s.draw()
	if err != nil {
		return LeafDomain{}, err
	}
	won, err := createFileExclusive(file, []byte(d.Name+"\n"), 0o644)
	if err != nil {
		return LeafDomain{}, s.writeError(err)
	}
	if won {
		return d, nil
	}
	// Another caller created the file first: its name is the name.
	// Without hard links, its write may still be in progress; wait for
	// the final newline a little while.
	deadline := time.Now().Add(leafReadPatience)
	for {
		name, err := readLeafDomainName(file)
		if err == nil {
			got, ok := s.parse(name)
			if !ok {
				return LeafDomain{}, s.mismatch(file, name)
			}
			return got, nil
		}
		if !errors.Is(err, errIncomplete) || time.Now().After(deadline) {
			return LeafDomain{}, s.readError(err)
		}
		time.Sleep(leafReadPatience / 100)
	}
}

// draw returns a new name with a random suffix, not yet stored.
func (s leafStore) draw() (LeafDomain, error) {
	suffix, err := randomSuffix()
	if err != nil {
		return LeafDomain{}, err
	}
	return LeafDomain{
		Name:   s.label + suffix + "." + s.region + "." + leafParent,
		Label:  s.label,
		Suffix: suffix,
		Region: s.region,
		Drawn:  true,
	}, nil
}

// parse returns name as a LeafDomain if it was made from the label and
// region: label + 6 characters + "." + region + ".cloudapp.azure.com".
func (s leafStore) parse(name string) (LeafDomain, bool) {
	label, suffix, region, ok := splitLeafDomainName(name)
	if !ok || label != s.label || region != s.region {
		return LeafDomain{}, false
	}
	return LeafDomain{Name: name, Label: label, Suffix: suffix, Region: region}, true
}

// splitLeafDomainName splits a name made by LeafDomainName into its label,
// suffix and region.
func splitLeafDomainName(name string) (label, suffix, region string, ok bool) {
	first, rest, _ := strings.Cut(name, ".")
	region, ok = strings.CutSuffix(rest, "."+leafParent)
	if !ok || region == "" || strings.Contains(region, ".") || len(first) <= leafSuffixLen {
		return "", "", "", false
	}
	cut := len(first) - leafSuffixLen
	return first[:cut], first[cut:], region, true
}

// mismatch is the error for a file holding a name not made from the label
// and region. It names both labels (and regions), and is about the label
// unless only the region differs.
func (s leafStore) mismatch(file, name string) error {
	field := "Label"
	label, _, region, ok := splitLeafDomainName(name)
	var err error
	if ok {
		if label == s.label {
			field = "Region"
		}
		err = problemf(ErrLeafDomainMismatch, "leaf domain name file %q holds %q, drawn for label %q in region %q, not for label %q in region %q",
			file, name, label, region, s.label, s.region)
	} else {
		err = problemf(ErrLeafDomainMismatch, "leaf domain name file %q holds %q, not a name for label %q in region %q",
			file, name, s.label, s.region)
	}
	return &ConfigError{Field: field, Err: err}
}

// readError is the error for a name file that cannot be read or is
// damaged (the message names the file).
func (s leafStore) readError(err error) error {
	return &ConfigError{Field: "Storage", Value: s.dir, Err: err}
}

// writeError is the error for a name file that cannot be written.
func (s leafStore) writeError(err error) error {
	return &ConfigError{Field: "Storage", Value: s.dir, Err: fmt.Errorf("writing the leaf domain name: %w", err)}
}

// successorPath is the file that holds the name replacing stale, named
// after it (or after its hash when it is not a plain DNS name, as a file
// written by hand may be).
func (s leafStore) successorPath(stale string) string {
	key := stale
	if len(key) > 200 || strings.Trim(key, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" || strings.HasPrefix(key, ".") {
		sum := sha256.Sum256([]byte(stale))
		key = "sha256-" + hex.EncodeToString(sum[:8])
	}
	return filepath.Join(s.dir, leafDomainFile+".after-"+key)
}

// checkDNSLabel reports whether s is a lowercase DNS label of at most max
// characters.
func checkDNSLabel(s string, max int) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > max:
		return fmt.Errorf("is %d characters long; at most %d are allowed", len(s), max)
	case s[0] == '-' || s[len(s)-1] == '-':
		return errors.New("must not start or end with a hyphen")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("character %q is not allowed; use letters, digits and hyphens", c)
		}
	}
	return nil
}

// readLeafDomainName reads a stored name. A file without its final newline
// is still being written by createFileExclusive's fallback and reads as
// incomplete.
func readLeafDomainName(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	name, complete := strings.CutSuffix(string(b), "\n")
	if !complete || name == "" || strings.ContainsAny(name, "\n\r") {
		return "", fmt.Errorf("leaf domain name file %q is %w", path, errIncomplete)
	}
	return name, nil
}

// createFileExclusive writes data to path only if path does not exist yet,
// and reports whether it did. The data is written and synced to a
// temporary file first and then hard-linked to path; link(2) fails if path
// exists, so exactly one of several concurrent writers wins and readers
// never see a partial file. On file systems without hard links it falls
// back to O_EXCL, where a reader can briefly see a partial file (which
// readLeafDomainName detects).
func createFileExclusive(path string, data []byte, mode os.FileMode) (won bool, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	err = os.Link(tmp, path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	// No hard links here (some SMB shares): exclusive create instead.
	g, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := g.Write(data); err != nil {
		g.Close()
		return true, err
	}
	if err := g.Sync(); err != nil {
		g.Close()
		return true, err
	}
	return true, g.Close()
}

// randomSuffix draws leafSuffixLen characters from [a-z0-9] with
// crypto/rand.
func randomSuffix() (string, error) {
	b := make([]byte, leafSuffixLen)
	n := big.NewInt(int64(len(leafSuffixAlphabet)))
	for i := range b {
		r, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", err
		}
		b[i] = leafSuffixAlphabet[r.Int64()]
	}
	return string(b), nil
}
