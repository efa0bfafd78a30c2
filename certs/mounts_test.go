package certs_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/scoregate/scoregate/certs"
)

func TestSubPathMounts(t *testing.T) {
	// From a pod with the Secret mounted twice: as a directory at /tls,
	// and tls.crt alone at /etc/scoregate/tls.crt with subPath.
	const mountinfo = `1390 1301 0:417 / / rw,relatime master:370 - overlay overlay rw,lowerdir=/var/lib/containerd/l1
1391 1390 0:419 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1402 1390 0:411 / /tls ro,relatime - tmpfs tmpfs rw,size=8388608k,inode64
1403 1390 0:411 /..2026_11_28_10_00_00.123/tls.crt /etc/scoregate/tls.crt ro,relatime - tmpfs tmpfs rw,size=8388608k
1404 1390 8:1 /var/lib/kubelet/pods/x/etc-hosts /etc/my\040dir/hosts rw,relatime - ext4 /dev/sda1 rw
`
	got := certs.SubPathMounts(strings.NewReader(mountinfo), "/tls/tls.crt", "/tls/tls.key", "/etc/scoregate/tls.crt", "/etc/my dir/hosts")
	want := []string{"/etc/scoregate/tls.crt", "/etc/my dir/hosts"}
	if !slices.Equal(got, want) {
		t.Errorf("SubPathMounts = %q, want %q", got, want)
	}
}
