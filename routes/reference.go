package routes

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/shanghai-mca/mzhub/config/structdoc"
	"github.com/shanghai-mca/mzhub/connectors"
)

// Reference renders the reference part of docs/routes.md (Markdown): the
// keys of a route file, every endpoint kind (the engine's own and those of
// reg) with the keys of its source and sink configs, and every step kind
// with its keys. Types and defaults come from the specs' config structs,
// descriptions from their field doc comments read from the sources under
// root (the module's directory). A field without a doc comment is an
// error. A golden test keeps docs/routes.md equal to it.
func Reference(root string, reg *connectors.Registry) (string, error) {
	g := &refGen{docs: structdoc.Docs{}}
	route := Route{}
	route.withDefaults()
	route.To = []Endpoint{{Timeout: DefaultSinkTimeout}}
	if err := g.docs.Add(root, reflect.TypeOf(route)); err != nil {
		return "", err
	}
	kinds := map[string]connectors.Spec{}
	for _, n := range reg.Names() {
		kinds[n], _ = reg.Lookup(n)
	}
	for n, s := range engineKinds {
		kinds[n] = s
	}
	names := make([]string, 0, len(kinds))
	for n, s := range kinds {
		names = append(names, n)
		for _, nc := range []func() any{roleConfig(s, roleSource), roleConfig(s, roleSink)} {
			if nc != nil {
				if err := g.docs.Add(root, reflect.TypeOf(nc())); err != nil {
					return "", err
				}
			}
		}
	}
	sort.Strings(names)
	steps := StepSpecs()
	for _, s := range steps {
		if err := g.docs.Add(root, reflect.TypeOf(s.NewConfig())); err != nil {
			return "", err
		}
	}

	b := &g.b
	b.WriteString("<!-- Generated from the route, step and connector config structs by `go test ./routes -run TestReferenceGolden -update`; edit the structs' doc comments, not this part. -->\n\n")
	b.WriteString("### Route file keys\n\n")
	g.table(reflect.ValueOf(route), "")

	b.WriteString("### Endpoint kinds\n\n")
	b.WriteString("`from`, `to[]` and `enrich.via` name a kind and give its `config`, decoded strictly into the config of the kind's role (source for `from`; sink for `to[]` and `enrich.via`).\n\n")
	for _, n := range names {
		s := kinds[n]
		fmt.Fprintf(b, "#### `%s`\n\n%s.\n\n", n, sentence(s.Summary))
		for _, role := range []struct{ name, where string }{{roleSource, "`from`"}, {roleSink, "`to[]`, `enrich.via`"}} {
			nc := roleConfig(s, role.name)
			if nc == nil {
				continue
			}
			cfg := reflect.ValueOf(nc()).Elem()
			fmt.Fprintf(b, "Config as a %s (%s)", role.name, role.where)
			if d := g.docs.TypeDoc(cfg.Type()); d != "" {
				fmt.Fprintf(b, ": %s", structdoc.OneLine(d))
			}
			b.WriteString("\n\n")
			g.table(cfg, "")
		}
	}

	b.WriteString("### Steps\n\n")
	b.WriteString("A step is a mapping with an optional `name` and exactly one of the keys below; the key's value is decoded strictly into the step's config.\n\n")
	for _, s := range steps {
		cfg := reflect.ValueOf(s.NewConfig()).Elem()
		fmt.Fprintf(b, "#### `%s`\n\n%s.", s.Name, sentence(s.Summary))
		if d := g.docs.TypeDoc(cfg.Type()); d != "" {
			fmt.Fprintf(b, " %s", structdoc.OneLine(d))
		}
		b.WriteString("\n\n")
		g.table(cfg, s.Name)
	}
	if len(g.missing) > 0 {
		return "", fmt.Errorf("routes reference: fields without a doc comment: %s", strings.Join(g.missing, ", "))
	}
	return b.String(), nil
}

// refGen writes the reference.
type refGen struct {
	b       strings.Builder
	docs    structdoc.Docs
	missing []string
}

var stepType = reflect.TypeOf(Step{})

// table writes the keys of struct value v as a Markdown table.
func (g *refGen) table(v reflect.Value, prefix string) {
	rows := g.rows(v, prefix)
	if len(rows) == 0 {
		g.b.WriteString("No keys.\n\n")
		return
	}
	g.b.WriteString("| key | type | default | description |\n|---|---|---|---|\n")
	g.b.WriteString(strings.Join(rows, "\n") + "\n\n")
}

// rows lists the keys of struct value v, nested keys as a.b and the keys
// of list elements as a[].b.
func (g *refGen) rows(v reflect.Value, prefix string) []string {
	var out []string
	for _, f := range structdoc.Fields(v, prefix) {
		doc := g.docs.Of(f)
		if doc == "" {
			g.missing = append(g.missing, f.DocKey)
		}
		row := func(typ, def string) {
			out = append(out, fmt.Sprintf("| `%s` | %s | %s | %s |", f.Path, typ, def, structdoc.OneLine(doc)))
		}
		t, val := f.Type, f.Value
		if t.Kind() == reflect.Pointer && isSection(t.Elem()) {
			t = t.Elem()
			if val.IsNil() {
				val = reflect.New(t).Elem()
			} else {
				val = val.Elem()
			}
		}
		switch {
		case t == yamlNodeType:
			row("mapping", "—")
		case t.Kind() == reflect.Slice && t.Elem() == stepType:
			row("list of steps", "—")
		case isSection(t):
			row("mapping", "—")
			out = append(out, g.rows(val, f.Path)...)
		case t.Kind() == reflect.Slice && isSection(t.Elem()):
			row("list of mappings", "—")
			elem := reflect.New(t.Elem()).Elem()
			if val.Len() > 0 {
				elem = val.Index(0)
			}
			out = append(out, g.rows(elem, f.Path+"[]")...)
		default:
			def := structdoc.DefaultValue(val)
			if t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
				def = "—"
				if val.Len() > 0 {
					def = fmt.Sprintf("`%v`", val.Interface())
				}
			}
			row(structdoc.TypeName(t), def)
		}
	}
	return out
}

// isSection tells whether t is a struct of keys (not a duration or a raw
// YAML node).
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != structdoc.DurationType && t != yamlNodeType && t != stepType
}

// sentence capitalizes a summary and drops its final period.
func sentence(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
