package main

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/mappings/mapcli"
)

func init() {
	register(command{
		name:    "map",
		summary: "convert a file with a mapping (mzhub map --mapping FILE --in IN --out OUT)",
		run:     runMap,
	})
	// Layout, mapping and code table files: kind: layout|mapping|codetable,
	// or any YAML under configs/mappings/.
	registerLinter(linter{
		name: "mapping engine (layout, mapping, code table)",
		match: func(path string, top map[string]any) bool {
			switch top["kind"] {
			case "layout", "mapping", "codetable":
				return true
			}
			return strings.Contains(filepath.ToSlash(path), "configs/mappings/")
		},
		lint: func(path string) []lintProblem {
			var out []lintProblem
			for _, e := range mappings.LintFile(path) {
				out = append(out, lintProblem{File: e.File, Line: e.Line, Message: e.Message})
			}
			return out
		},
	})
}

func runMap(ctx context.Context, env *cliEnv, args []string) int {
	return mapcli.Run(ctx, env.Stdout, env.Stderr, env.IsTerminal, args)
}
