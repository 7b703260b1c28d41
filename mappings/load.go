package mappings

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// SpecError lists the problems of one YAML file. It matches ErrSpec.
type SpecError struct {
	// File is the path of the file.
	File string
	// Problems are the problems found, in file order.
	Problems []Problem
}

// Error implements error.
func (e *SpecError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Msg)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrSpec) true.
func (e *SpecError) Unwrap() error { return ErrSpec }

// Loader loads layouts, mappings and code tables from a file system and
// caches them by path. Paths inside files are relative to the file. A
// Loader is safe for concurrent use.
type Loader struct {
	fsys    fs.FS
	mu      sync.Mutex
	layouts map[string]*Layout
	tables  map[string]*CodeTable
}

// NewLoader returns a loader reading from fsys (os.DirFS, an embed.FS, or
// fstest.MapFS in tests).
func NewLoader(fsys fs.FS) *Loader {
	return &Loader{fsys: fsys, layouts: map[string]*Layout{}, tables: map[string]*CodeTable{}}
}

// osLoader returns a loader for an OS path and the path's name in it.
func osLoader(p string) (*Loader, string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, "", fmt.Errorf("mappings: %s: %w", p, err)
	}
	vol := filepath.VolumeName(abs)
	root := vol + string(filepath.Separator)
	name := strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(abs, vol)), "/")
	return NewLoader(os.DirFS(root)), name, nil
}

// LoadLayoutFile loads a layout from an OS path.
func LoadLayoutFile(p string) (*Layout, error) {
	l, name, err := osLoader(p)
	if err != nil {
		return nil, err
	}
	return l.Layout(name)
}

// LoadMappingFile loads a mapping and its layouts from an OS path.
func LoadMappingFile(p string) (*Mapping, error) {
	l, name, err := osLoader(p)
	if err != nil {
		return nil, err
	}
	return l.Mapping(name)
}

// FS returns the loader's file system.
func (l *Loader) FS() fs.FS { return l.fsys }

// Layout loads and compiles the layout at name.
func (l *Loader) Layout(name string) (*Layout, error) {
	name = path.Clean(name)
	l.mu.Lock()
	lay, ok := l.layouts[name]
	l.mu.Unlock()
	if ok {
		return lay, nil
	}
	var spec LayoutSpec
	lines, probs, err := l.decode(name, &spec)
	if err != nil {
		return nil, err
	}
	if lines != nil {
		// Unknown keys do not stop the other checks: lint reports all.
		var ps []Problem
		lay, ps = compileLayout(&spec, func(rel string) (*CodeTable, error) {
			return l.CodeTable(path.Join(path.Dir(name), rel))
		}, lines)
		probs = sortProblems(append(probs, ps...))
	}
	if len(probs) > 0 {
		return nil, &SpecError{File: name, Problems: probs}
	}
	l.mu.Lock()
	l.layouts[name] = lay
	l.mu.Unlock()
	return lay, nil
}

// CodeTable loads the code table at name.
func (l *Loader) CodeTable(name string) (*CodeTable, error) {
	name = path.Clean(name)
	l.mu.Lock()
	ct, ok := l.tables[name]
	l.mu.Unlock()
	if ok {
		return ct, nil
	}
	var spec CodeTableSpec
	lines, probs, err := l.decode(name, &spec)
	if err != nil {
		return nil, err
	}
	if lines != nil {
		var ps []Problem
		ct, ps = compileCodeTable(&spec, lines)
		probs = sortProblems(append(probs, ps...))
	}
	if len(probs) > 0 {
		return nil, &SpecError{File: name, Problems: probs}
	}
	l.mu.Lock()
	l.tables[name] = ct
	l.mu.Unlock()
	return ct, nil
}

// Mapping loads and compiles the mapping at name with its layouts.
func (l *Loader) Mapping(name string) (*Mapping, error) {
	name = path.Clean(name)
	var spec MappingSpec
	lines, probs, err := l.decode(name, &spec)
	if err != nil {
		return nil, err
	}
	if lines == nil {
		return nil, &SpecError{File: name, Problems: probs}
	}
	m, ps, err := compileMapping(l, name, &spec, lines)
	if err != nil {
		return nil, err
	}
	probs = sortProblems(append(probs, ps...))
	if len(probs) > 0 {
		return nil, &SpecError{File: name, Problems: probs}
	}
	return m, nil
}

// decode reads name strictly into v. It returns a line finder and the
// decoding problems (nil when none); err is for I/O failures.
func (l *Loader) decode(name string, v any) (func(...any) int, []Problem, error) {
	data, err := fs.ReadFile(l.fsys, name)
	if err != nil {
		return nil, nil, fmt.Errorf("mappings: read %s: %w", name, err)
	}
	lines, probs := decodeStrict(data, v)
	return lines, probs, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// decodeStrict decodes data into v rejecting unknown keys.
func decodeStrict(data []byte, v any) (func(...any) int, []Problem) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlProblems(err)
	}
	lines := func(p ...any) int { return nodeLine(&root, p...) }
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return lines, yamlProblems(err)
	}
	return lines, nil
}

func yamlProblems(err error) []Problem {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	probs := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{Msg: m}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Msg = strings.Replace(sm[2], "in type mappings.", "in ", 1)
		}
		probs = append(probs, p)
	}
	return probs
}

// nodeLine follows keys (string) and indexes (int) from the document root
// and returns the line of the deepest node found.
func nodeLine(root *yaml.Node, p ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, step := range p {
		switch k := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}

// SniffKind returns the kind: key of a YAML file ("" if none).
func SniffKind(data []byte) string {
	var h struct {
		Kind string `yaml:"kind"`
	}
	_ = yaml.Unmarshal(data, &h)
	return h.Kind
}

// sortProblems orders problems by line (stable), nil when there are none.
func sortProblems(ps []Problem) []Problem {
	if len(ps) == 0 {
		return nil
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return ps
}
