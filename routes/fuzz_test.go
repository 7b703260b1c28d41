package routes_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shanghai-mca/mzhub/routes"
)

// FuzzLintFile: whatever a route file holds, linting it reports problems
// and never panics.
func FuzzLintFile(f *testing.F) {
	files, _ := filepath.Glob("../configs/routes/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("id: a\nfrom: {kind: bus, config: {topic: x}}\nsteps:\n  - split: {lines: true}\nto: [{kind: bus, config: {topic: y}}]\n"))
	f.Add([]byte("use: x\ninstances: [{}]\n"))
	f.Add([]byte("id: a\nfrom: {kind: http, config: {url: x, methods: [POST]}}\nsteps:\n  - &s {filter: {expr: 'true', x: 1}}\n  - *s\n  - {name: n, nosuch: {}}\n  - enrich: {via: {kind: http, config: {url: 'http://h/', retry: 1}}, target: t}\nto: [{kind: bus, config: {topic: y}}]\n"))
	f.Add([]byte("template: t\nparams: [{name: a}]\nroute: {id: '${a}'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "r.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = routes.LintFile(p)
	})
}
