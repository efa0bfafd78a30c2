package certs

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// SubPathMounts returns those of files that sit on a mount of their own in
// the mount table mountinfo (the format of /proc/self/mountinfo). A file
// mounted by itself is what a Kubernetes volumeMount with subPath makes,
// and such a mount never sees updates to the Secret or ConfigMap behind it:
// rotation would silently stop working.
func SubPathMounts(mountinfo io.Reader, files ...string) []string {
	points := map[string]bool{}
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID parentID major:minor root mountPoint options ... - fstype source superOptions
		f := strings.Fields(sc.Text())
		if len(f) >= 5 {
			points[unescapeMount(f[4])] = true
		}
	}
	var out []string
	for _, file := range files {
		abs, err := filepath.Abs(file)
		if err != nil {
			continue
		}
		if points[abs] {
			out = append(out, file)
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// SubPathMountsOfProcess is SubPathMounts over /proc/self/mountinfo; on a
// system without it, it returns nil.
func SubPathMountsOfProcess(files ...string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	return SubPathMounts(f, files...)
}
