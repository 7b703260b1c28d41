package structdoc

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

// ModulePath is the Go module of this repository; doc comments are read
// from the sources of its packages only.
const ModulePath = "github.com/shanghai-mca/mzhub"

// DurationType is time.Duration, which YAML writes as a string ("15s").
var DurationType = reflect.TypeOf(time.Duration(0))

// Field is one key of a config struct as YAML sees it.
type Field struct {
	reflect.StructField
	// Name is the YAML key, Path the dotted path from the struct walked.
	Name, Path string
	// Value is the field's value in the struct walked.
	Value reflect.Value
	// DocKey finds the field's doc comment in Docs.
	DocKey string
}

// IsSection tells whether the field is a nested struct (a section of keys).
func (f Field) IsSection() bool {
	return f.Type.Kind() == reflect.Struct && f.Type != DurationType
}

// Fields lists the YAML keys of struct value v: exported fields not tagged
// "-", with the fields of an inline (`yaml:",inline"`) struct in place of
// it. prefix starts every Path ("" at the top).
func Fields(v reflect.Value, prefix string) []Field {
	t := v.Type()
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, inline := yamlName(f)
		if name == "-" || !f.IsExported() && !(inline && f.Anonymous) {
			continue
		}
		if inline && f.Type.Kind() == reflect.Struct {
			out = append(out, Fields(v.Field(i), prefix)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		out = append(out, Field{StructField: f, Name: name, Path: path, Value: v.Field(i),
			DocKey: t.PkgPath() + "." + t.Name() + "." + f.Name})
	}
	return out
}

// TypeFields is Fields of the zero value of struct type t.
func TypeFields(t reflect.Type, prefix string) []Field {
	return Fields(reflect.New(t).Elem(), prefix)
}

// yamlName returns a field's YAML key (the lower-cased field name when the
// tag gives none) and whether it is inline.
func yamlName(f reflect.StructField) (string, bool) {
	name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	inline := false
	for _, o := range strings.Split(opts, ",") {
		if o == "inline" {
			inline = true
		}
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, inline
}

// Docs maps "pkgpath.Type.Field" (a Field's DocKey) to the field's doc
// comment.
type Docs map[string]string

// Of returns the doc comment of f ("" when it has none).
func (d Docs) Of(f Field) string { return d[f.DocKey] }

// Collect reads the field doc comments of t and of every struct type
// reachable from its fields, parsing each package's sources (under root,
// the module's directory) once.
func Collect(root string, types ...reflect.Type) (Docs, error) {
	docs := Docs{}
	return docs, docs.Add(root, types...)
}

// Add reads the field doc comments of more types into d.
func (d Docs) Add(root string, types ...reflect.Type) error {
	seen := map[reflect.Type]bool{}
	var collect func(t reflect.Type) error
	collect = func(t reflect.Type) error {
		switch t.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer:
			return collect(t.Elem())
		case reflect.Struct:
		default:
			return nil
		}
		if t == DurationType || seen[t] || t.PkgPath() == "" {
			return nil
		}
		seen[t] = true
		if !strings.HasPrefix(t.PkgPath(), ModulePath) {
			// A type from outside the module (yaml.Node, time.Time): its
			// fields are not keys of ours.
			return nil
		}
		if _, done := d[parsedKey(t.PkgPath())]; !done {
			if err := d.parse(root, t.PkgPath()); err != nil {
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
	for _, t := range types {
		if err := collect(t); err != nil {
			return err
		}
	}
	return nil
}

func parsedKey(pkgPath string) string { return "package:" + pkgPath }

// TypeDoc returns the doc comment of a struct type read by Add.
func (d Docs) TypeDoc(t reflect.Type) string { return d["type:"+t.PkgPath()+"."+t.Name()] }

func (d Docs) parse(root, pkgPath string) error {
	d[parsedKey(pkgPath)] = ""
	rel := strings.TrimPrefix(strings.TrimPrefix(pkgPath, ModulePath), "/")
	dir := filepath.Join(root, filepath.FromSlash(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("structdoc: %w", err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		// Test files are read too: their types document only tests.
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		if err != nil {
			return fmt.Errorf("structdoc: %w", err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				d["type:"+pkgPath+"."+ts.Name.Name] = strings.TrimSpace(doc.Text())
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fld := range st.Fields.List {
					text := strings.TrimSpace(fld.Doc.Text())
					for _, name := range fld.Names {
						d[pkgPath+"."+ts.Name.Name+"."+name.Name] = text
					}
				}
			}
		}
	}
	return nil
}

// TypeName names a field's type for readers: string, bool, integer,
// number, duration, list of …, map of ….
func TypeName(t reflect.Type) string {
	if t == DurationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list of " + TypeName(t.Elem())
	case reflect.Map:
		return "map of " + TypeName(t.Elem())
	case reflect.Pointer:
		return TypeName(t.Elem())
	}
	return t.Kind().String()
}

// DefaultValue renders a field's default for a Markdown table: `value`,
// or "—" for a zero value (durations always show).
func DefaultValue(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "—"
		}
		v = v.Elem()
	}
	if v.Type() == DurationType {
		return "`" + time.Duration(v.Int()).String() + "`"
	}
	if v.IsZero() {
		return "—"
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

// OneLine joins a doc comment into one line fit for a Markdown table cell.
func OneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", "\\|")
}
