// kstatus prints what sigs.k8s.io/cli-utils' kstatus library — the one Flux health checks and
// `kubectl wait`-style tools build on — computes for each object it reads: one JSON line per
// object, {"kind","namespace","name","status","message"}. Objects come as YAML or JSON
// documents (several per file, or a List) from the files named, or from stdin without any.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	out := json.NewEncoder(os.Stdout)
	inputs := os.Args[1:]
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	for _, path := range inputs {
		if err := each(path, func(u *unstructured.Unstructured) error {
			res, err := status.Compute(u)
			if err != nil {
				return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
			}
			return out.Encode(verdict{u.GetKind(), u.GetNamespace(), u.GetName(), res.Status.String(), res.Message})
		}); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

// each calls fn for every object in the file (a List's items one by one). Objects are decoded by
// the API machinery's own JSON scheme, which keeps integers int64 as kstatus expects them.
func each(path string, fn func(*unstructured.Unstructured) error) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	dec := yaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty document between two `---`
		}
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
		if err != nil {
			return err
		}
		switch o := obj.(type) {
		case *unstructured.UnstructuredList:
			for i := range o.Items {
				if err := fn(&o.Items[i]); err != nil {
					return err
				}
			}
		case *unstructured.Unstructured:
			if err := fn(o); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected object %T", obj)
		}
	}
}
