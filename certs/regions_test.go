package certs

import (
	"errors"
	"slices"
	"testing"
)

func TestAzureRegionsAreSortedUniqueDNSLabels(t *testing.T) {
	if !slices.IsSorted(azureRegions) {
		t.Error("azureRegions is not sorted; CheckRegion searches it with slices.BinarySearch")
	}
	for i, r := range azureRegions {
		if i > 0 && azureRegions[i-1] == r {
			t.Errorf("azureRegions lists %q twice", r)
		}
		if err := checkDNSLabel(r, maxLabelLen); err != nil {
			t.Errorf("azureRegions: %q %v", r, err)
		}
	}
	for _, r := range regionExamples {
		if _, found := slices.BinarySearch(azureRegions, r); !found {
			t.Errorf("regionExamples names %q, which azureRegions does not list", r)
		}
	}
}

func TestCheckRegion(t *testing.T) {
	for _, tt := range []struct {
		name, region string
		want         string // the error message; "" for nil
	}{
		{"listed", "westeurope", ""},
		{"listed, any case", "WestEurope", ""},
		{"listed, with a digit", "australiacentral2", ""},
		{"newer region in the list", "newzealandnorth", ""},
		{"one letter missing", "westeurop", `unknown Azure region "westeurop"; did you mean "westeurope"?`},
		{"hyphenated", "west-europe", `unknown Azure region "west-europe"; did you mean "westeurope"?`},
		{"display name", "west europe", `unknown Azure region "west europe"; did you mean "westeurope"?`},
		{"letters swapped", "wsetus2", `unknown Azure region "wsetus2"; did you mean "westus2"?`},
		{"three equally close", "westus4", `unknown Azure region "westus4"; did you mean "westus", "westus2" or "westus3"?`},
		{"short", "eastu", `unknown Azure region "eastu"; did you mean "eastus"?`},
		{"nothing close", "mars", `unknown Azure region "mars"; Azure region names look like "eastus", "westeurope" or "southeastasia"`},
		{"words swapped is too far", "europewest", `unknown Azure region "europewest"; Azure region names look like "eastus", "westeurope" or "southeastasia"`},
		{"not listed yet", "newregion1", `unknown Azure region "newregion1"; Azure region names look like "eastus", "westeurope" or "southeastasia"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRegion(tt.region)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckRegion(%q) = %v, want nil", tt.region, err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrUnknownRegion) {
				t.Errorf("CheckRegion(%q) = %v\nwant %s (wrapping ErrUnknownRegion)", tt.region, err, tt.want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"westus", "westus", 0},
		{"westeurop", "westeurope", 1},
		{"westeurope", "westeurop", 1},
		{"eastus", "westus", 2},
		{"ab", "ba", 1}, // a swap is one edit
		{"wsetus", "westus", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // optimal string alignment: no edit of a swapped pair
	} {
		if got := EditDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
