package mappings

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LintError is one problem found in a layout, mapping or code table file.
type LintError struct {
	// File is the path of the file as given to the linter.
	File string
	// Line is the 1-based line, 0 when unknown.
	Line int
	// Message describes the problem.
	Message string
}

// String formats the problem as file:line: message.
func (e LintError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Message)
}

// IsMappingFile tells whether a YAML file belongs to the mapping engine:
// its top-level kind is layout, mapping or codetable, or it lies under a
// configs/mappings directory. data may be nil (path only).
func IsMappingFile(p string, data []byte) bool {
	switch SniffKind(data) {
	case "layout", "mapping", "codetable":
		return true
	}
	ext := strings.ToLower(path.Ext(p))
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	return strings.Contains(filepath.ToSlash(p), "configs/mappings/")
}

// LintFile checks one layout, mapping or code table file on disk: strict
// keys, types, overlapping or missing fixed-width positions, widths that do
// not add up to the record length, unknown code tables and layouts,
// expressions that do not compile, and for mappings that the declared test
// files exist. It returns nil when the file is clean.
func LintFile(p string) []LintError {
	ld, name, err := osLoader(p)
	if err != nil {
		return []LintError{{File: p, Message: err.Error()}}
	}
	errs := LintFS(ld, name)
	for i := range errs {
		if errs[i].File == name {
			errs[i].File = p
		}
	}
	return errs
}

// LintFS checks the file name read through loader ld.
func LintFS(ld *Loader, name string) []LintError {
	data, err := fs.ReadFile(ld.fsys, name)
	if err != nil {
		return []LintError{{File: name, Message: err.Error()}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		var out []LintError
		for _, p := range yamlProblems(err) {
			out = append(out, LintError{File: name, Line: p.Line, Message: p.Msg})
		}
		return out
	}
	var lerr error
	switch kind := SniffKind(data); kind {
	case "layout":
		_, lerr = ld.Layout(name)
	case "codetable":
		_, lerr = ld.CodeTable(name)
	case "mapping":
		var m *Mapping
		m, lerr = ld.Mapping(name)
		if lerr == nil {
			var out []LintError
			dir := path.Dir(name)
			for i, t := range m.Tests {
				for _, f := range []string{t.Input, t.Expect} {
					if _, err := fs.Stat(ld.fsys, path.Join(dir, f)); err != nil {
						out = append(out, LintError{File: name, Message: fmt.Sprintf("test %d: %s: %v", i, f, errors.Unwrap(err))})
					}
				}
			}
			return out
		}
	case "":
		return []LintError{{File: name, Line: 1, Message: "no kind: key (want kind: layout, mapping or codetable)"}}
	default:
		return []LintError{{File: name, Line: 1, Message: fmt.Sprintf("kind %q: want layout, mapping or codetable", kind)}}
	}
	if lerr == nil {
		return nil
	}
	var se *SpecError
	if errors.As(lerr, &se) {
		out := make([]LintError, 0, len(se.Problems))
		for _, p := range se.Problems {
			out = append(out, LintError{File: se.File, Line: p.Line, Message: p.Msg})
		}
		return out
	}
	return []LintError{{File: name, Message: lerr.Error()}}
}
