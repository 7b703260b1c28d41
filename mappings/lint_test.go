package mappings

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestLintShippedFiles lints every YAML file under configs/mappings.
func TestLintShippedFiles(t *testing.T) {
	ld := testLoader()
	n := 0
	err := fs.WalkDir(ld.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		n++
		for _, e := range LintFS(ld, p) {
			t.Errorf("%s", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Errorf("linted only %d files", n)
	}
}

const lintTable = `kind: codetable
name: t
codes:
  - {code: "A", value: paid}
`

// TestLintFindsProblems checks that each broken file reports the expected
// problem at the expected line.
func TestLintFindsProblems(t *testing.T) {
	cases := []struct {
		name, file string
		line       int
		want       string
	}{
		{"unknown key", "kind: layout\nname: x\nformat: fixed\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string, width: 2, colour: red}\n", 7, "colour"},
		{"overlap", "kind: layout\nname: x\nformat: fixed\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string, width: 4, start: 1}\n      - {name: b, type: string, width: 4, start: 3}\n", 8, "overlaps"},
		{"gap", "kind: layout\nname: x\nformat: fixed\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string, width: 4, start: 1}\n      - {name: b, type: string, width: 4, start: 7}\n", 8, "gap"},
		{"widths do not add up", "kind: layout\nname: x\nformat: fixed\nrecords:\n  - kind: detail\n    length: 10\n    fields:\n      - {name: a, type: string, width: 4}\n", 6, "add up to 4"},
		{"unknown code table", "kind: layout\nname: x\nformat: delimited\nseparator: \"|\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: enum, codes: nope.yaml}\n", 8, "unknown code table"},
		{"bad type", "kind: layout\nname: x\nformat: delimited\nseparator: \"|\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: float}\n", 8, "type \"float\""},
		{"amount unit", "kind: layout\nname: x\nformat: delimited\nseparator: \"|\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: amount}\n", 8, "unit"},
		{"no kind", "name: x\n", 1, "no kind"},
		{"sum of unknown field", "kind: layout\nname: x\nformat: delimited\nseparator: \"|\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string}\n  - kind: trailer\n    fields:\n      - {name: t, type: amount, unit: fen, aggregate: sum, of: amt}\n", 0, "no such numeric detail field"},
		{"bad expression", "kind: mapping\nname: m\nsource: l.yaml\ntarget: l.yaml\ndetail:\n  - {target: a, expr: 'nosuch + 1'}\n", 6, "expr"},
		{"mapping unknown target field", "kind: mapping\nname: m\nsource: l.yaml\ntarget: l.yaml\ndetail:\n  - {target: zz, from: a}\n", 6, "target field \"zz\""},
		{"duplicate code", "kind: codetable\nname: c\ncodes:\n  - {code: \"1\"}\n  - {code: \"1\"}\n", 5, "duplicate code"},
		{"yaml syntax", "kind: layout\n  name: [\n", 2, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"f.yaml": {Data: []byte(tc.file)},
				"t.yaml": {Data: []byte(lintTable)},
				"l.yaml": {Data: []byte("kind: layout\nname: l\nformat: delimited\nseparator: \",\"\nrecords:\n  - kind: detail\n    fields:\n      - {name: a, type: string}\n")},
			}
			errs := LintFS(NewLoader(fsys), "f.yaml")
			if len(errs) == 0 {
				t.Fatal("no problem found")
			}
			for _, e := range errs {
				if strings.Contains(e.Message, tc.want) && e.Line == tc.line {
					return
				}
			}
			t.Errorf("want line %d containing %q, got %v", tc.line, tc.want, errs)
		})
	}
}

func TestIsMappingFile(t *testing.T) {
	cases := []struct {
		path string
		data string
		want bool
	}{
		{"x/configs/mappings/banks/a.yaml", "", true},
		{"configs/routes/a.yaml", "kind: mapping\n", true},
		{"configs/routes/a.yaml", "steps: []\n", false},
		{"configs/mappings/banks/testdata/a.txt", "", false},
	}
	for _, tc := range cases {
		if got := IsMappingFile(tc.path, []byte(tc.data)); got != tc.want {
			t.Errorf("IsMappingFile(%s) = %v", tc.path, got)
		}
	}
}
