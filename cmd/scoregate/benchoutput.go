package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/scoregate/scoregate/bench"
)

func writeBenchOutput(c benchConfig, results []*bench.Result, alt *bench.AddedSpread, stdout io.Writer) error {
	var added *bench.Latency
	if len(results) == 2 && alt == nil {
		a := bench.Added(results[0], results[1])
		added = &a
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(benchReport{Results: results, Added: added, Alternated: alt})
	}
	if alt != nil {
		// One table per alternation: side by side, 2N columns would not
		// fit a terminal.
		for i := 0; i < len(results); i += 2 {
			if err := bench.WriteTable(stdout, results[i:min(i+2, len(results))]...); err != nil {
				return err
			}
			fmt.Fprintln(stdout)
		}
		return alt.WriteTable(stdout)
	}
	if err := bench.WriteTable(stdout, results...); err != nil {
		return err
	}
	if added != nil {
		_, err := fmt.Fprintf(stdout, "\n%s adds p50 %s, p99 %s over %s.\n", results[0].Label,
			signed(added.P50), signed(added.P99), results[1].Label)
		return err
	}
	return nil
}
