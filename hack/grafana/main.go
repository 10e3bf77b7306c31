// grafana checks Grafana dashboards (JSON files) against Grafana's own schema, as the Apache-2.0
// grafana-foundation-sdk generates it from Grafana's schema definitions: strict decoding
// (unknown fields, wrong types and missing required fields fail), each panel's options and field
// config against its plugin's schema, and the schema's constraints. Prints one line per file:
// "ok" or what is wrong; exits 1 when any file is wrong.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Printf("%s: %v\n", path, err)
			failed = true
		} else {
			fmt.Printf("%s: ok\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d dashboard.Dashboard
	if err := problems(d.UnmarshalJSONStrict(raw)); err != nil {
		return err
	}
	return problems(d.Validate())
}

// problems is err unless it is an empty list: the SDK returns its error list typed even when it
// holds nothing, which as an `error` is not nil.
func problems(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}
