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
	rs, errs := routes.LoadDir("../configs/routes")
	if errs != nil {
		t.Fatalf("LoadDir: %v", errs)
	}
	ids := map[string]bool{}
	for _, r := range rs {
		ids[r.ID] = true
	}
	for _, want := range []string{"bank-boc-disbursement-return", "bank-ccb-deduction-return", "village-bank-query-vb01", "village-bank-query-vb14", "funeral-halls-push"} {
		if !ids[want] {
			t.Errorf("route %s missing (have %d routes)", want, len(rs))
		}
	}
	n := 0
	for id := range ids {
		if len(id) > 19 && id[:19] == "village-bank-query-" {
			n++
		}
	}
	if n != 14 {
		t.Errorf("%d village bank routes, want 14", n)
	}
}
