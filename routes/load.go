package routes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/topology"
)

// A route file is one of three shapes, told apart by its top-level keys:
//
//   - a route: id, from, steps, to, ...
//   - a template (file name *.template.yaml): template, params, route — the
//     route may use ${param} placeholders;
//   - instances of a template: use (the template name), instances (a list
//     of parameter maps, each with at least id).
//
// topics.yaml (topology.DeclarationsFile) declares the external bus topics
// of the topology; it holds no route, and package topology reads it.

// templateDoc is a template file.
type templateDoc struct {
	// Template names the template; instance files refer to it with use.
	Template string `yaml:"template"`
	// Description says what the template is for.
	Description string `yaml:"description"`
	// Params are the parameters an instance gives.
	Params []Param `yaml:"params"`
	// Route is the route with ${param} placeholders.
	Route yaml.Node `yaml:"route"`
}

// Param is one template parameter.
type Param struct {
	// Name is the placeholder name (${name}).
	Name string `yaml:"name"`
	// Default is used when an instance does not give the parameter; a parameter without default is required.
	Default *string `yaml:"default"`
	// Description says what the parameter is.
	Description string `yaml:"description"`
}

// instancesDoc is a file instantiating a template.
type instancesDoc struct {
	// Use names the template.
	Use string `yaml:"use"`
	// Instances are parameter maps (string values).
	Instances []map[string]string `yaml:"instances"`
}

// LintError is one problem of a route file.
type LintError struct {
	// File is the path of the file with the problem.
	File string
	// Line is 1-based (0 when the problem concerns the whole file).
	Line int
	// Message says what is wrong.
	Message string
}

func (e LintError) String() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message) }

var placeholder = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}`)

// fileKind tells which shape a file has.
func fileKind(root *yaml.Node) string {
	if root == nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return "route"
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "template":
			return "template"
		case "use":
			return "instances"
		}
	}
	return "route"
}

// strictDecode decodes data into out rejecting unknown keys.
func strictDecode(data []byte, out any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(out)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("empty file")
	}
	return err
}

// yamlErrors turns a yaml error into lint errors with lines.
var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

func yamlLintErrors(file string, err error, lineOffset int) []LintError {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var out []LintError
	for _, m := range msgs {
		le := LintError{File: file, Message: m}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			le.Line = n + lineOffset
			le.Message = sm[2]
		}
		out = append(out, le)
	}
	return out
}

// parseRouteBytes decodes a plain route file.
func parseRouteBytes(file string, data []byte) (*Route, []LintError) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlLintErrors(file, err, 0)
	}
	var r Route
	if err := strictDecode(data, &r); err != nil {
		return nil, yamlLintErrors(file, err, 0)
	}
	r.file = file
	r.root = &root
	return &r, nil
}

// LoadFile reads a route file, a template instances file or a template file,
// and returns its routes (none for a template file alone). Templates named by
// instance files are looked up beside the file as <name>.template.yaml.
// Every problem (decoding and validation against the built-in connector
// registry) is returned.
func LoadFile(path string) ([]*Route, []LintError) {
	return loadFile(path, lintRegistry())
}

func loadFile(path string, reg kindChecker) ([]*Route, []LintError) {
	if filepath.Base(path) == topology.DeclarationsFile {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []LintError{{File: path, Message: err.Error()}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(placeholder.ReplaceAll(data, []byte("__param_${1}__")), &root); err != nil {
		return nil, yamlLintErrors(path, err, 0)
	}
	switch fileKind(&root) {
	case "template":
		return nil, lintTemplate(path, data, reg)
	case "instances":
		return loadInstances(path, data, reg)
	}
	r, errs := parseRouteBytes(path, data)
	if errs != nil {
		return nil, errs
	}
	if errs := validateRoute(r, reg); errs != nil {
		return nil, errs
	}
	return []*Route{r}, nil
}

// LintFile reports every problem of a route file (file, line, message); an
// empty result means the file is good. mzhub lint calls it for each file
// under configs/routes.
//
// Map steps naming a mapping are checked against the mappings directory
// beside the routes directory (configs/mappings next to configs/routes)
// when it exists.
func LintFile(path string) []LintError {
	if isTestFile(filepath.Base(path)) {
		return lintTestFile(path)
	}
	rs, errs := LoadFile(path)
	if errs != nil {
		return errs
	}
	mdir := filepath.Join(filepath.Dir(path), "..", "mappings")
	if st, err := os.Stat(mdir); err != nil || !st.IsDir() {
		return nil
	}
	mp := NewMappingsMapper(mdir)
	for _, r := range rs {
		for i, s := range r.Steps {
			m, ok := s.Config.(*MapStep)
			if !ok || m.Mapping == "" {
				continue
			}
			if err := mp.Check(m.Mapping); err != nil {
				errs = append(errs, LintError{File: path, Line: nodeLine(r.root, "steps", i, "map", "mapping"),
					Message: fmt.Sprintf("route %s: steps[%d].map.mapping %q: %s", r.ID, i, m.Mapping, oneLine(err.Error()))})
			}
		}
	}
	return errs
}

// readTemplate decodes a template file.
func readTemplate(path string) (*templateDoc, []byte, []LintError) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, []LintError{{File: path, Message: err.Error()}}
	}
	// Placeholders may sit where YAML would read braces ({per_second: ${rate}}):
	// parse the structure with neutral tokens in their place.
	neutral := placeholder.ReplaceAll(data, []byte("__param_${1}__"))
	var t templateDoc
	if err := strictDecode(neutral, &t); err != nil {
		return nil, nil, yamlLintErrors(path, err, 0)
	}
	var errs []LintError
	if t.Template == "" {
		errs = append(errs, LintError{File: path, Line: 1, Message: "template: a name is required"})
	}
	if t.Route.Kind != yaml.MappingNode {
		errs = append(errs, LintError{File: path, Line: 1, Message: "route: a mapping is required"})
	}
	seen := map[string]bool{}
	for _, p := range t.Params {
		if p.Name == "" || seen[p.Name] {
			errs = append(errs, LintError{File: path, Line: t.Route.Line, Message: fmt.Sprintf("params: empty or duplicate name %q", p.Name)})
		}
		seen[p.Name] = true
	}
	for _, m := range placeholder.FindAllSubmatch(data, -1) {
		if !seen[string(m[1])] {
			errs = append(errs, LintError{File: path, Line: lineOfBytes(data, m[0]), Message: fmt.Sprintf("placeholder ${%s} is not a declared param", m[1])})
		}
	}
	return &t, data, errs
}

func lineOfBytes(data, sub []byte) int {
	i := bytes.Index(data, sub)
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// lintTemplate checks a template alone: its own structure and the route
// decoded with every parameter replaced by its default or a sample value.
func lintTemplate(path string, _ []byte, reg kindChecker) []LintError {
	t, data, errs := readTemplate(path)
	if t == nil || errs != nil {
		return errs
	}
	params := map[string]string{}
	for _, p := range t.Params {
		params[p.Name] = "sample"
		if p.Default != nil {
			params[p.Name] = *p.Default
		}
	}
	_, errs = instantiate(path, data, t, params, 0, reg, false)
	return errs
}

// instantiate substitutes params into the template text and decodes its route.
func instantiate(path string, data []byte, t *templateDoc, params map[string]string, instLine int, reg kindChecker, validate bool) (*Route, []LintError) {
	var errs []LintError
	for k, v := range params {
		if strings.ContainsAny(v, "\n\r") {
			errs = append(errs, LintError{File: path, Line: instLine, Message: fmt.Sprintf("param %s: value must be one line", k)})
		}
	}
	if errs != nil {
		return nil, errs
	}
	text := placeholder.ReplaceAllFunc(data, func(m []byte) []byte {
		name := string(m[2 : len(m)-1])
		return []byte(params[name])
	})
	// Decode the substituted file as a template whose route is a Route, so
	// unknown keys are reported with the template's own line numbers.
	var doc struct {
		Template    string  `yaml:"template"`
		Description string  `yaml:"description"`
		Params      []Param `yaml:"params"`
		Route       Route   `yaml:"route"`
	}
	if err := strictDecode(text, &doc); err != nil {
		return nil, yamlLintErrors(path, err, 0)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(text, &root)
	r := &doc.Route
	r.file = path
	r.root = routeSubtree(&root)
	if !validate {
		return r, nil
	}
	if errs := validateRoute(r, reg); errs != nil {
		return nil, errs
	}
	return r, nil
}

// routeSubtree returns a document node whose content is the template's route
// mapping, so line lookups work as for a plain route file.
func routeSubtree(root *yaml.Node) *yaml.Node {
	if root == nil || len(root.Content) == 0 {
		return root
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "route" {
			return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m.Content[i+1]}}
		}
	}
	return root
}

// loadInstances instantiates a template once per instance.
func loadInstances(path string, data []byte, reg kindChecker) ([]*Route, []LintError) {
	var doc instancesDoc
	if err := strictDecode(data, &doc); err != nil {
		return nil, yamlLintErrors(path, err, 0)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	if doc.Use == "" {
		return nil, []LintError{{File: path, Line: 1, Message: "use: a template name is required"}}
	}
	tpath := filepath.Join(filepath.Dir(path), doc.Use+".template.yaml")
	t, tdata, terrs := readTemplate(tpath)
	if terrs != nil {
		return nil, append([]LintError{{File: path, Line: nodeLine(&root, "use"), Message: fmt.Sprintf("template %q has problems", doc.Use)}}, terrs...)
	}
	if len(doc.Instances) == 0 {
		return nil, []LintError{{File: path, Line: nodeLine(&root, "use"), Message: "instances: at least one is required"}}
	}
	var (
		out  []*Route
		errs []LintError
	)
	declared := map[string]Param{}
	for _, p := range t.Params {
		declared[p.Name] = p
	}
	for i, inst := range doc.Instances {
		line := nodeLine(&root, "instances", i)
		params := map[string]string{}
		var ierrs []LintError
		keys := make([]string, 0, len(inst))
		for k := range inst {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := declared[k]; !ok {
				ierrs = append(ierrs, LintError{File: path, Line: nodeLine(&root, "instances", i, k), Message: fmt.Sprintf("instances[%d]: unknown param %q of template %s", i, k, doc.Use)})
			}
		}
		for _, p := range t.Params {
			v, ok := inst[p.Name]
			switch {
			case ok:
				params[p.Name] = v
			case p.Default != nil:
				params[p.Name] = *p.Default
			default:
				ierrs = append(ierrs, LintError{File: path, Line: line, Message: fmt.Sprintf("instances[%d]: param %q is required by template %s", i, p.Name, doc.Use)})
			}
		}
		if ierrs != nil {
			errs = append(errs, ierrs...)
			continue
		}
		r, rerrs := instantiate(tpath, tdata, t, params, line, reg, true)
		if rerrs != nil {
			errs = append(errs, LintError{File: path, Line: line, Message: fmt.Sprintf("instances[%d]: template %s does not instantiate:", i, doc.Use)})
			errs = append(errs, rerrs...)
			continue
		}
		r.origin = fmt.Sprintf("%s:%d", path, line)
		r.file = path
		out = append(out, r)
	}
	if errs != nil {
		return nil, errs
	}
	return out, nil
}

// nodeAt follows path (string keys, int indexes) from a document node.
func nodeAt(root *yaml.Node, path ...any) *yaml.Node {
	if root == nil {
		return nil
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return n
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
					break
				}
			}
			if next == nil {
				return n
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return n
			}
			n = n.Content[k]
		}
	}
	return n
}

// nodeLine is the line of the node at path (or of its closest ancestor).
func nodeLine(root *yaml.Node, path ...any) int {
	if n := nodeAt(root, path...); n != nil {
		return n.Line
	}
	return 0
}

// LoadDir loads every route file of dir (*.yaml and *.yml, not *_test.yaml
// and not *.template.yaml, which instance files use) and checks route ids
// are unique.
func LoadDir(dir string) ([]*Route, []LintError) {
	return loadDir(dir, lintRegistry())
}

func loadDir(dir string, reg kindChecker) ([]*Route, []LintError) {
	files, err := routeFiles(dir)
	if err != nil {
		return nil, []LintError{{File: dir, Message: err.Error()}}
	}
	var (
		out  []*Route
		errs []LintError
	)
	byID := map[string]string{}
	for _, f := range files {
		rs, ferrs := loadFile(f, reg)
		errs = append(errs, ferrs...)
		for _, r := range rs {
			if prev, dup := byID[r.ID]; dup {
				errs = append(errs, LintError{File: f, Line: nodeLine(r.root, "id"), Message: fmt.Sprintf("route id %q is also defined in %s", r.ID, prev)})
				continue
			}
			byID[r.ID] = f
			out = append(out, r)
		}
	}
	return out, errs
}

// routeFiles lists the route files of dir, sorted.
func routeFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		if isTestFile(n) || strings.HasSuffix(n, ".template.yaml") {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out, nil
}

func isTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

// lintTestFile checks a route test file's structure and that its route exists.
func lintTestFile(path string) []LintError {
	data, err := os.ReadFile(path)
	if err != nil {
		return []LintError{{File: path, Message: err.Error()}}
	}
	var tf TestFile
	if err := strictDecode(data, &tf); err != nil {
		return yamlLintErrors(path, err, 0)
	}
	file := tf.File
	if file == "" {
		base := filepath.Base(path)
		file = strings.TrimSuffix(strings.TrimSuffix(base, "_test.yaml"), "_test.yml") + ".yaml"
	}
	rs, errs := LoadFile(filepath.Join(filepath.Dir(path), file))
	if errs != nil {
		return []LintError{{File: path, Line: 1, Message: fmt.Sprintf("route file %s has problems (lint it)", file)}}
	}
	for _, r := range rs {
		if r.ID == tf.Route || (tf.Route == "" && len(rs) == 1) {
			return nil
		}
	}
	return []LintError{{File: path, Line: 1, Message: fmt.Sprintf("route %q not found in %s", tf.Route, file)}}
}
