package proxy

import (
	"slices"
	"strings"
	"testing"
)

// FuzzAuthorized: from key file to Authorization header. Whatever the file
// and the header, nothing panics, and a request passes exactly when its
// header is "Bearer " (any case) followed by one of the keys ParseKeys
// found, byte for byte; every key found passes, and nothing else does.
// FuzzParseKeys covers the parser alone (its seeds are extended in
// testdata/fuzz/FuzzParseKeys).
func FuzzAuthorized(f *testing.F) {
	for _, s := range [][2]string{
		{keyA, "Bearer " + keyA},
		{keyA + "\n" + keyB, "bearer " + keyB},
		{keyA, "BEARER " + keyA},
		{keyA, "Bearer  " + keyA},
		{keyA, "Bearer " + keyA + " "},
		{keyA, "Bearer " + keyA[:len(keyA)-1]},
		{keyA, "Basic " + keyA},
		{keyA, "Bearer"},
		{keyA, ""},
		{"\ufeff" + keyA, "Bearer \ufeff" + keyA},
		{" " + keyA + "\r\n", "Bearer " + keyA},
		{"", "Bearer "},
		{"# " + keyA, "Bearer # " + keyA},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, file []byte, authorization string) {
		keys, err := ParseKeys(file)
		if err != nil {
			keys = nil // an empty set refuses everything
		}
		ks := NewKeySet(keys)
		const scheme = "bearer "
		want := len(authorization) > len(scheme) && strings.EqualFold(authorization[:len(scheme)], scheme) &&
			slices.Contains(keys, authorization[len(scheme):])
		if got := ks.Authorized(authorization); got != want {
			t.Fatalf("keys %q: Authorized(%q) = %v, want %v", keys, authorization, got, want)
		}
		for _, k := range keys {
			if !ks.Authorized("Bearer "+k) || !ks.Authorized("bEaReR "+k) {
				t.Fatalf("key %q from the file is refused", k)
			}
			for _, miss := range []string{"Bearer " + k + "x", "Bearer " + k[1:], "Bearer " + k[:len(k)-1], k} {
				if ks.Authorized(miss) && !slices.Contains(keys, strings.TrimPrefix(miss, "Bearer ")) {
					t.Fatalf("%q, a near miss of key %q, passes", miss, k)
				}
			}
		}
	})
}
