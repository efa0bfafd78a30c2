package certs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrUnknownRegion means a region is not one of the Azure public cloud
// region names scoregate knows (azureRegions). CheckRegion's errors wrap
// it; a command that has an escape hatch for regions newer than the list
// branches on it with errors.Is.
var ErrUnknownRegion = errors.New("unknown Azure region")

// azureRegions are the Azure public cloud's physical region names as
// `az account list-locations --query "[].name"` prints them, sorted.
//
// Sources, checked on 2026-11-29:
//   - the output of `az account list-locations` recorded in
//     github.com/tal66/cloud-regions (web/data/azureData.js, updated
//     2023-12-20), for every name up to westus3;
//   - Microsoft Learn, "Azure regions list", the "Programmatic name" column
//     (learn.microsoft.com/azure/reliability/regions-list): austriaeast,
//     belgiumcentral;
//   - Northflank's list of Azure region names
//     (northflank.com/cloud/azure/regions): chilecentral,
//     indonesiacentral, malaysiawest, mexicocentral, newzealandnorth,
//     spaincentral.
//
// Left out: the canary, staging and logical locations that
// list-locations also prints (centraluseuap, eastus2euap, eastusstg,
// brazilus), sovereign clouds (China, US Government), and regions whose
// programmatic name no source above gave (such as Denmark East, Sweden
// South, Taiwan North). Azure opens regions faster than this list changes:
// for a region newer than the list, the commands take
// --allow-unknown-region (LeafDomainOptions.AllowUnknownRegion), which
// skips CheckRegion.
var azureRegions = []string{
	"australiacentral",
	"australiacentral2",
	"australiaeast",
	"australiasoutheast",
	"austriaeast",
	"belgiumcentral",
	"brazilsouth",
	"brazilsoutheast",
	"canadacentral",
	"canadaeast",
	"centralindia",
	"centralus",
	"chilecentral",
	"eastasia",
	"eastus",
	"eastus2",
	"francecentral",
	"francesouth",
	"germanynorth",
	"germanywestcentral",
	"indonesiacentral",
	"israelcentral",
	"italynorth",
	"japaneast",
	"japanwest",
	"jioindiacentral",
	"jioindiawest",
	"koreacentral",
	"koreasouth",
	"malaysiawest",
	"mexicocentral",
	"newzealandnorth",
	"northcentralus",
	"northeurope",
	"norwayeast",
	"norwaywest",
	"polandcentral",
	"qatarcentral",
	"southafricanorth",
	"southafricawest",
	"southcentralus",
	"southeastasia",
	"southindia",
	"spaincentral",
	"swedencentral",
	"switzerlandnorth",
	"switzerlandwest",
	"uaecentral",
	"uaenorth",
	"uksouth",
	"ukwest",
	"westcentralus",
	"westeurope",
	"westindia",
	"westus",
	"westus2",
	"westus3",
}

// regionExamples are named when nothing in the list is close to a
// misspelt region.
var regionExamples = []string{"eastus", "westeurope", "southeastasia"}

// maxSuggestions is how many equally close names an error suggests.
const maxSuggestions = 3

// CheckRegion returns nil if region (compared in lower case) is one of the
// Azure public cloud region names scoregate knows (see azureRegions for
// the list and its sources). Otherwise it returns an
// error wrapping ErrUnknownRegion whose message names the region and
// suggests the closest listed names, such as
//
//	unknown Azure region "westeurop"; did you mean "westeurope"?
//
// or, when no listed name is within a few edits, gives examples of what
// region names look like. The message names no flag: the caller knows
// which one it came from and what its escape hatch is.
func CheckRegion(region string) error {
	r := strings.ToLower(region)
	if _, found := slices.BinarySearch(azureRegions, r); found {
		return nil
	}
	if near := closestRegions(r); len(near) > 0 {
		return fmt.Errorf("%w %q; did you mean %s?", ErrUnknownRegion, region, orList(near))
	}
	return fmt.Errorf("%w %q; Azure region names look like %s", ErrUnknownRegion, region, orList(regionExamples))
}

// closestRegions returns the listed regions at the smallest edit distance
// from r, at most maxSuggestions of them in list order, if that distance
// is small for r's length: at most a third of it, and at most 3 (one edit
// is always allowed).
func closestRegions(r string) []string {
	limit := min(3, max(1, len(r)/3))
	best := limit + 1
	var near []string
	for _, name := range azureRegions {
		switch d := EditDistance(r, name); {
		case d < best:
			best, near = d, []string{name}
		case d == best && len(near) < maxSuggestions:
			near = append(near, name)
		}
	}
	return near
}

// orList quotes names and joins them as `"a"`, `"a" or "b"` or
// `"a", "b" or "c"`.
func orList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// EditDistance is the optimal string alignment distance between a and b
// (Damerau–Levenshtein restricted to edits that do not overlap): the
// fewest insertions, deletions, substitutions and swaps of two adjacent
// bytes that turn a into b. It counts bytes, which are characters in
// ASCII names such as regions and flags (the command line's "did you
// mean" for an unknown flag uses it too).
func EditDistance(a, b string) int {
	// Three rows of the dynamic-programming table: i-2, i-1 and i.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
