package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/shanghai-mca/mzhub/config/structdoc"
)

// Reference renders the configuration reference (Markdown) from the
// structs' doc comments, read from the sources under root, and the values of
// Default(), registered sections included. A golden test keeps
// docs/config-reference.md equal to it.
func Reference(root string) (string, error) { return reference(Default(), root) }

func reference(def Config, root string) (string, error) {
	doc := def.document()
	docs, err := structdoc.Collect(root, doc.fieldTypes()...)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated from the config structs by `go test ./config -update`. Do not edit. -->\n\n")
	b.WriteString("mzhub reads one YAML file (`--config FILE`; the embedded profile `configs/mzhub.yaml` when none is given).\n")
	b.WriteString("Unknown keys are errors. Every scalar key can be overridden by an environment variable: the key path\n")
	b.WriteString("in upper case with dots as underscores, prefixed `MZHUB_` (for example `store.dsn` → `MZHUB_STORE_DSN`).\n")
	b.WriteString("Put secrets there, never in a file. Durations are written like `15s`, `2m`, `1h30m`.\n\n")
	var missing []string
	var walk func(v reflect.Value, prefix string, depth int)
	walk = func(v reflect.Value, prefix string, depth int) {
		var rows []string
		var subs []structdoc.Field
		for _, f := range structdoc.Fields(v, prefix) {
			doc := docOf(docs, f)
			if doc == "" {
				missing = append(missing, f.Path)
			}
			if f.IsSection() {
				subs = append(subs, f)
				continue
			}
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | `%s` | %s |", f.Path, structdoc.TypeName(f.Type), structdoc.DefaultValue(f.Value), EnvName(f.Path), structdoc.OneLine(doc)))
		}
		if len(rows) > 0 {
			if prefix == "" {
				b.WriteString("## Top level\n\n")
			} else {
				fmt.Fprintf(&b, "%s `%s`\n\n", strings.Repeat("#", min(depth+1, 4)), prefix)
				if d := docs[sectionKey(prefix)]; d != "" {
					b.WriteString(structdoc.OneLine(d) + "\n\n")
				}
			}
			b.WriteString("| key | type | default | environment | description |\n|---|---|---|---|---|\n")
			b.WriteString(strings.Join(rows, "\n") + "\n\n")
		}
		for _, f := range subs {
			docs[sectionKey(f.Path)] = docOf(docs, f)
			walk(f.Value, f.Path, depth+1)
		}
	}
	walk(doc.v, "", 1)
	if len(missing) > 0 {
		return "", fmt.Errorf("config reference: fields without a doc comment: %s", strings.Join(missing, ", "))
	}
	return b.String(), nil
}

func sectionKey(path string) string { return "section:" + path }

// docOf returns a field's description: its "doc" tag (a registered
// section's field in the run-time document type) or its doc comment.
func docOf(docs structdoc.Docs, f structdoc.Field) string {
	if d := f.Tag.Get("doc"); d != "" {
		return d
	}
	return docs.Of(f)
}
