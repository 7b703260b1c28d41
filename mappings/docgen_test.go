package mappings

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strings"
	"testing"
)

const docFile = "../docs/mappings.md"

// keyReference renders the YAML keys of the spec structs from their doc
// comments.
func keyReference(t *testing.T) string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "spec.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "\n### %s\n\n%s\n\n| key | type | meaning |\n|---|---|---|\n", ts.Name.Name, strings.TrimSpace(gd.Doc.Text()))
			for _, fld := range st.Fields.List {
				tag := reflect.StructTag(strings.Trim(fld.Tag.Value, "`")).Get("yaml")
				key := strings.Split(tag, ",")[0]
				typ := string(bytes.TrimSpace([]byte(types(fld.Type))))
				text := strings.Join(strings.Fields(doc.Synopsis(fld.Doc.Text())+" "+rest(fld.Doc.Text())), " ")
				if key == "" {
					fmt.Fprintf(&b, "| (%s keys) | | %s |\n", typ, text)
					continue
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", key, typ, strings.ReplaceAll(text, "|", "\\|"))
			}
		}
	}
	return b.String()
}

func rest(s string) string {
	syn := doc.Synopsis(s)
	return strings.TrimPrefix(strings.Join(strings.Fields(s), " "), strings.Join(strings.Fields(syn), " "))
}

func types(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.StarExpr:
		return types(x.X)
	case *ast.ArrayType:
		return "list of " + types(x.Elt)
	case *ast.MapType:
		return "map of " + types(x.Value)
	}
	return "?"
}

// TestKeyReference keeps the key reference in docs/mappings.md equal to
// the spec structs' doc comments.
func TestKeyReference(t *testing.T) {
	data, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN GENERATED KEYS -->", "<!-- END GENERATED KEYS -->"
	i, j := bytes.Index(data, []byte(begin)), bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-keys markers", docFile)
	}
	want := keyReference(t)
	got := string(data[i+len(begin) : j])
	if got == want {
		return
	}
	if !*update {
		t.Fatalf("%s key reference is stale; run go test ./mappings -run TestKeyReference -update", docFile)
	}
	out := append(append(append([]byte{}, data[:i+len(begin)]...), want...), data[j:]...)
	if err := os.WriteFile(docFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
