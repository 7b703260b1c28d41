package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// inDir reports whether path has a directory named dir among its parents.
func inDir(path, dir string) bool {
	for _, part := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		if part == dir {
			return true
		}
	}
	return false
}

func init() {
	registerLinter(linter{
		name: "route (route, template, or route test)",
		match: func(path string, top map[string]any) bool {
			if inDir(path, "routes") {
				return true
			}
			_, hasRoutes := top["routes"]
			_, hasTemplate := top["template"]
			return hasRoutes || hasTemplate
		},
		lint: func(path string) []lintProblem {
			var out []lintProblem
			for _, e := range routes.LintFile(path) {
				out = append(out, lintProblem{File: e.File, Line: e.Line, Message: e.Message})
			}
			return out
		},
	})
	registerLinter(linter{
		name: "funeral partner registry",
		match: func(path string, top map[string]any) bool {
			return inDir(path, "funeral") && inDir(path, "partners")
		},
		lint: func(path string) []lintProblem {
			f, err := os.Open(path)
			if err != nil {
				return []lintProblem{{File: path, Message: err.Error()}}
			}
			defer f.Close()
			pf, err := funeral.DecodePartnerFile(f)
			if err != nil {
				return []lintProblem{{File: path, Line: lineOf(err), Message: err.Error()}}
			}
			var out []lintProblem
			for _, p := range pf.Partners {
				if err := p.Validate(); err != nil {
					out = append(out, lintProblem{File: path, Message: "partner " + p.ID + ": " + err.Error()})
				}
			}
			return out
		},
	})
}
