package config

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// modulePath is the Go module of this repository, used to find sources.
const modulePath = "github.com/shanghai-mca/mzhub"

// fieldDocs maps "pkgpath.Type.Field" to the field's doc comment.
type fieldDocs map[string]string

// Reference renders the configuration reference (Markdown) from the
// structs' doc comments, read from the sources under root, and the values of
// Default(). A golden test keeps docs/config-reference.md equal to it.
func Reference(root string) (string, error) {
	def := Default()
	docs, err := collectDocs(root, reflect.TypeOf(def))
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
		var subs []field
		for _, f := range fields(v, prefix) {
			doc := docs[f.docKey]
			if doc == "" {
				missing = append(missing, f.path)
			}
			if f.isSection() {
				subs = append(subs, f)
				continue
			}
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | `%s` | %s |", f.path, typeName(f.Type), defaultValue(f.value), EnvName(f.path), oneLine(doc)))
		}
		if len(rows) > 0 {
			if prefix == "" {
				b.WriteString("## Top level\n\n")
			} else {
				fmt.Fprintf(&b, "%s `%s`\n\n", strings.Repeat("#", min(depth+1, 4)), prefix)
				if d := docs[sectionKey(prefix)]; d != "" {
					b.WriteString(oneLine(d) + "\n\n")
				}
			}
			b.WriteString("| key | type | default | environment | description |\n|---|---|---|---|---|\n")
			b.WriteString(strings.Join(rows, "\n") + "\n\n")
		}
		for _, f := range subs {
			docs[sectionKey(f.path)] = docs[f.docKey]
			walk(f.value, f.path, depth+1)
		}
	}
	walk(reflect.ValueOf(def), "", 1)
	if len(missing) > 0 {
		return "", fmt.Errorf("config reference: fields without a doc comment: %s", strings.Join(missing, ", "))
	}
	return b.String(), nil
}

func sectionKey(path string) string { return "section:" + path }

// collectDocs reads the field doc comments of t and of every struct type
// reachable from its fields, parsing each package's sources once.
func collectDocs(root string, t reflect.Type) (fieldDocs, error) {
	docs := fieldDocs{}
	parsed := map[string]bool{}
	var collect func(t reflect.Type) error
	collect = func(t reflect.Type) error {
		switch t.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer:
			return collect(t.Elem())
		case reflect.Struct:
		default:
			return nil
		}
		if t == durationType {
			return nil
		}
		if !parsed[t.PkgPath()] {
			parsed[t.PkgPath()] = true
			if err := docs.parse(root, t.PkgPath()); err != nil {
				return err
			}
		}
		for i := 0; i < t.NumField(); i++ {
			if err := collect(t.Field(i).Type); err != nil {
				return err
			}
		}
		return nil
	}
	return docs, collect(t)
}

func (d fieldDocs) parse(root, pkgPath string) error {
	rel, ok := strings.CutPrefix(pkgPath, modulePath)
	if !ok {
		return fmt.Errorf("config reference: type from outside the module: %s", pkgPath)
	}
	dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("config reference: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		if err != nil {
			return fmt.Errorf("config reference: %w", err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, fld := range st.Fields.List {
				text := strings.TrimSpace(fld.Doc.Text())
				for _, name := range fld.Names {
					d[pkgPath+"."+ts.Name.Name+"."+name.Name] = text
				}
			}
			return false
		})
	}
	return nil
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	}
	return t.Kind().String()
}

func defaultValue(v reflect.Value) string {
	if v.Type() == durationType {
		return "`" + time.Duration(v.Int()).String() + "`"
	}
	if v.IsZero() {
		return "—"
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return fmt.Sprintf("`%v`", v.Interface())
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", "\\|")
}
