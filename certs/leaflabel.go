package certs

import (
	"crypto/rand"
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
// the operator draws a new one (LeafDomainName's overwrite).
var (
	// ErrLeafDomainMismatch: the stored name was made from another label
	// or region.
	ErrLeafDomainMismatch = errors.New("the stored name was made from another label or region")
	// ErrLeafDomainIncomplete: the stored name file is incomplete or
	// malformed.
	ErrLeafDomainIncomplete = errIncomplete
)

// LeafDomainName returns the DNS name LABEL + 6 random [a-z0-9] + "." +
// REGION + ".cloudapp.azure.com", the scheme of Azure ML's
// leaf_domain_label, and keeps it in storageDir so that restarts and every
// instance sharing storageDir use the same name.
//
// label and region are lowercased and must be DNS labels: letters, digits
// and hyphens, neither starting nor ending with a hyphen. The first label
// of the name (label plus the suffix) must fit in 63 characters, so label
// is at most 57. Errors about them are *ConfigErrors for the fields
// "Label" and "Region".
//
// If storageDir (created with mode 0700 if missing) already holds a name,
// it is returned unchanged; if that name was made from another label or
// region, LeafDomainName returns an error rather than silently changing
// the name that DNS points at. overwrite draws a new suffix and replaces
// the stored name. The file is written atomically (temporary file, fsync,
// then a hard link, or a rename when overwriting), so concurrent callers
// on a fresh directory, in one process or many sharing the directory,
// agree on one name: the first link wins and the others read it.
func LeafDomainName(storageDir, label, region string, overwrite bool) (string, error) {
	label, region = strings.ToLower(label), strings.ToLower(region)
	if err := checkDNSLabel(label, maxLabelLen-leafSuffixLen); err != nil {
		return "", &ConfigError{Field: "Label", Value: label, Err: err}
	}
	if err := checkDNSLabel(region, maxLabelLen); err != nil {
		return "", &ConfigError{Field: "Region", Value: region, Err: err}
	}
	if storageDir == "" {
		return "", errors.New("certs: LeafDomainName needs a storage directory")
	}
	if err := os.MkdirAll(storageDir, 0o700); err != nil {
		return "", fmt.Errorf("storage directory: %w", err)
	}
	path := filepath.Join(storageDir, leafDomainFile)

	if !overwrite {
		name, err := readLeafDomainName(path)
		switch {
		case err == nil:
			return name, checkLeafDomainName(path, name, label, region)
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
	}

	suffix, err := randomSuffix()
	if err != nil {
		return "", err
	}
	name := label + suffix + "." + region + "." + leafParent
	if overwrite {
		if err := writeFileAtomic(path, []byte(name+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("leaf domain name file %q: %w", path, err)
		}
		return name, nil
	}
	won, err := createFileExclusive(path, []byte(name+"\n"), 0o644)
	if err != nil {
		return "", fmt.Errorf("leaf domain name file %q: %w", path, err)
	}
	if won {
		return name, nil
	}
	// Another instance created the file first: its name is the name.
	// Without hard links, its write may still be in progress; wait for
	// the final newline a little while.
	deadline := time.Now().Add(leafReadPatience)
	for {
		name, err = readLeafDomainName(path)
		if err == nil {
			return name, checkLeafDomainName(path, name, label, region)
		}
		if !errors.Is(err, errIncomplete) || time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(leafReadPatience / 100)
	}
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

// checkLeafDomainName returns an error if the stored name was not made
// from label and region.
func checkLeafDomainName(path, name, label, region string) error {
	first, rest, _ := strings.Cut(name, ".")
	suffix, ok := strings.CutPrefix(first, label)
	if ok && len(suffix) == leafSuffixLen && rest == region+"."+leafParent {
		return nil
	}
	return fmt.Errorf("leaf domain name file %q holds %q, not made from label %q and region %q: %w",
		path, name, label, region, ErrLeafDomainMismatch)
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
