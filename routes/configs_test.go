package routes_test

import (
	"path/filepath"
	"testing"

	_ "github.com/shanghai-mca/mzhub/connectors/httpx" // the http kind the shipped routes use
	"github.com/shanghai-mca/mzhub/routes"
)

// TestShippedRoutesLint lints every file of configs/routes, as mzhub lint does.
func TestShippedRoutesLint(t *testing.T) {
	files, _ := filepath.Glob("../configs/routes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no route files found")
	}
	for _, f := range files {
		for _, e := range routes.LintFile(f) {
			t.Errorf("%s", e)
		}
	}
	if _, errs := routes.LoadDir("../configs/routes"); errs != nil {
		t.Fatalf("LoadDir: %v", errs)
	}
}
