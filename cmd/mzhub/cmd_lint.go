package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/topology"
)

func init() {
	register(command{name: "lint", summary: "check config, route, partner and mapping files (file:line: problem)", run: runLint})
}

// lintProblem is one finding, printed as file:line: message.
type lintProblem struct {
	File    string
	Line    int
	Message string
}

func (p lintProblem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Message)
}

// linter checks one kind of file. match sees the path and the decoded top
// level mapping (nil when the file is not a YAML mapping).
type linter struct {
	name  string
	match func(path string, top map[string]any) bool
	lint  func(path string) []lintProblem
}

// linters is the init-time list of file linters; the first match wins.
var linters []linter

func registerLinter(l linter) { linters = append(linters, l) }

func init() {
	registerLinter(linter{
		name: "hub config",
		match: func(path string, top map[string]any) bool {
			_, ok := top["profile"]
			return ok
		},
		lint: lintHubConfig,
	})
	// Before the route linter (lint_kinds.go), which claims every file of a
	// routes directory.
	registerLinter(linter{
		name: "topology declarations (external bus topics)",
		match: func(path string, _ map[string]any) bool {
			return filepath.Base(path) == topology.DeclarationsFile && filepath.Base(filepath.Dir(path)) == "routes"
		},
		lint: func(path string) []lintProblem {
			_, problems := topology.LoadDeclarations(filepath.Dir(path))
			return fromTopology(problems)
		},
	})
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// lineOf extracts the first "line N" from a YAML error.
func lineOf(err error) int {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

func lintHubConfig(path string) []lintProblem {
	_, err := config.Load(path, func(string) string { return "" })
	if err == nil {
		return nil
	}
	var out []lintProblem
	keyLines := yamlKeyLines(path)
	msg := strings.TrimPrefix(err.Error(), "config: "+path+": ")
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "invalid:" || line == "yaml: unmarshal errors:" {
			continue
		}
		n := lineOf(errors.New(line))
		if n == 0 {
			// Validation messages start with the key path: "store.driver: ...".
			if key, _, ok := strings.Cut(line, ":"); ok {
				n = keyLines[key]
			}
		}
		out = append(out, lintProblem{File: path, Line: n, Message: line})
	}
	return out
}

// yamlKeyLines maps every dotted key path of a YAML file to its line.
func yamlKeyLines(path string) map[string]int {
	out := map[string]int{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return out
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix != "" {
				k = prefix + "." + k
			}
			out[k] = n.Content[i].Line
			walk(n.Content[i+1], k)
		}
	}
	walk(doc.Content[0], "")
	return out
}

func runLint(_ context.Context, env *cliEnv, args []string) int {
	fset := flag.NewFlagSet("lint", flag.ContinueOnError)
	fset.SetOutput(env.Stderr)
	verbose := fset.Bool("v", false, "print every file checked and its kind")
	fset.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: mzhub lint [-v] PATH...")
		fmt.Fprintln(env.Stderr, "\nChecks every .yaml/.yml file under the paths (hub configs, routes, partners, layouts,")
		fmt.Fprintln(env.Stderr, "mappings, code tables), then the topology of each routes directory with the hub's")
		fmt.Fprintln(env.Stderr, "services: a bus topic consumed but never produced, or produced but never consumed,")
		fmt.Fprintln(env.Stderr, "is a problem unless routes/topics.yaml declares it external.")
		fmt.Fprintln(env.Stderr, "Prints file:line: problem and exits 1 when anything is wrong.")
		fset.PrintDefaults()
	}
	if code, ok := parseFlags(fset, args); !ok {
		return code
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return 2
	}
	var files []string
	for _, root := range fset.Args() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if strings.HasPrefix(d.Name(), ".") && p != root {
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(env.Stderr, "%v\n", err)
			return 1
		}
	}
	sort.Strings(files)
	var problems []lintProblem
	for _, f := range files {
		ps, kind := lintOne(f)
		if *verbose {
			fmt.Fprintf(env.Stdout, "%s: %s\n", f, kind)
		}
		problems = append(problems, ps...)
	}
	problems = append(problems, lintTopology(files, topology.Services())...)
	for _, p := range problems {
		fmt.Fprintln(env.Stdout, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(env.Stderr, "lint: %d problem(s) in %d file(s) checked\n", len(problems), len(files))
		return 1
	}
	fmt.Fprintf(env.Stderr, "lint: %d file(s) ok\n", len(files))
	return 0
}

// lintOne checks a file: YAML syntax first, then the linter of its kind.
func lintOne(path string) ([]lintProblem, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return []lintProblem{{File: path, Message: err.Error()}}, "unreadable"
	}
	var top map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&top); err != nil && !errors.Is(err, io.EOF) {
		return []lintProblem{{File: path, Line: lineOf(err), Message: "YAML: " + err.Error()}}, "invalid YAML"
	}
	for _, l := range linters {
		if l.match(path, top) {
			return l.lint(path), l.name
		}
	}
	return nil, "YAML (syntax only: no linter claims this file)"
}

// lintTopology checks the topology of every routes directory among files
// (a directory named routes holding a checked file) with the hub's
// services: every topic produced is consumed and every topic consumed is
// produced, unless topics.yaml declares its missing end external. A
// directory whose route files or declarations have problems is not checked
// (the problems are reported already, and its topology would be incomplete).
func lintTopology(files []string, services []topology.Service) []lintProblem {
	dirs := map[string]bool{}
	for _, f := range files {
		if d := filepath.Dir(f); filepath.Base(d) == "routes" {
			dirs[d] = true
		}
	}
	var out []lintProblem
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		rs, errs := routes.LoadDir(dir)
		if errs != nil {
			continue
		}
		decls, problems := topology.LoadDeclarations(dir)
		if problems != nil {
			continue // reported with the file
		}
		m := topology.Build(topology.Input{Routes: routes.Topology(rs), Services: services, Declarations: decls})
		out = append(out, fromTopology(m.Check())...)
	}
	return out
}

func fromTopology(problems []topology.Problem) []lintProblem {
	var out []lintProblem
	for _, p := range problems {
		out = append(out, lintProblem{File: p.File, Line: p.Line, Message: p.Message})
	}
	return out
}
