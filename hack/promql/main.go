// promql parses PromQL expressions with Prometheus's own parser and names the metrics each
// one reads, so a test can check that a dashboard's queries are valid PromQL and read only
// metrics docs/metrics.md describes. Input (stdin): a JSON array of expressions. Output: a JSON
// array, in the same order, of {"metrics": [names…]} or {"error": "…"} for one that does not parse.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Metrics []string `json:"metrics,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintf(os.Stderr, "promql: stdin is not a JSON array of strings: %v\n", err)
		os.Exit(1)
	}
	p := parser.NewParser(parser.Options{})
	out := make([]result, len(exprs))
	for i, e := range exprs {
		expr, err := p.ParseExpr(e)
		if err != nil {
			out[i] = result{Error: err.Error()}
			continue
		}
		out[i] = result{Metrics: metricNames(expr)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "promql: %v\n", err)
		os.Exit(1)
	}
}

// metricNames lists, sorted and once each, the metric names the expression's selectors read
// (`foo{…}` or `{__name__="foo"}`); a selector matching names by regex has none to list.
func metricNames(expr parser.Expr) []string {
	seen := map[string]bool{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name != "" {
			seen[vs.Name] = true
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				seen[m.Value] = true
			}
		}
		return nil
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
