package config_test

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/config"
	_ "github.com/shanghai-mca/mzhub/connectors/cardcenter"
	_ "github.com/shanghai-mca/mzhub/connectors/datasea"
	_ "github.com/shanghai-mca/mzhub/services/bankaccounts" // section accounts
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/services/funeral"
	_ "github.com/shanghai-mca/mzhub/services/portal"
	_ "github.com/shanghai-mca/mzhub/services/verification" // section verification
)

// This package imports every package that registers a config section
// (TestEverySectionImported keeps the list honest), so the shipped files
// load and the reference and schema show every section as the binary does.

var update = flag.Bool("update", false, "rewrite golden files")

const modulePath = "github.com/shanghai-mca/mzhub"

func noEnv(string) string { return "" }

func TestLoadShippedProfiles(t *testing.T) {
	for _, name := range []string{"../configs/mzhub.yaml", "../configs/cluster.yaml"} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			if _, err := config.Load(name, noEnv); err != nil {
				t.Fatalf("Load(%s): %v", name, err)
			}
		})
	}
	t.Run("built-in default", func(t *testing.T) {
		cfg, err := config.Load("", noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Profile != "embedded" || cfg.Store.Driver != "sqlite" || cfg.Bus.Kind != "local" {
			t.Fatalf("default profile = %s/%s/%s, want embedded/sqlite/local", cfg.Profile, cfg.Store.Driver, cfg.Bus.Kind)
		}
		if d := disbursement.ConfigFrom(cfg); d.Dir != filepath.Join("data", "disbursement") {
			t.Fatalf("disbursement.dir = %q, want it under data_dir", d.Dir)
		}
	})
}

func TestServiceSections(t *testing.T) {
	env := map[string]string{
		"MZHUB_DISBURSEMENT_POLL_EVERY": "750ms",
		"MZHUB_FUNERAL_ENVIRONMENT":     "sandbox",
	}
	cfg, err := config.Load("../configs/cluster.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	d, f := disbursement.ConfigFrom(cfg), funeral.ConfigFrom(cfg)
	if d.Dir != "/var/lib/mzhub/disbursement" || d.PollEvery.String() != "750ms" || f.Environment != "sandbox" { // dir: under data_dir
		t.Fatalf("disbursement %+v, funeral environment %q", d, f.Environment)
	}
	// Relative section paths resolve like the others.
	cfg, err = config.Decode("test.yml", strings.NewReader("disbursement:\n  dir: var/disb\nfuneral:\n  partners_dir: fp\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resolve("/srv/hub")
	if d, f := disbursement.ConfigFrom(cfg), funeral.ConfigFrom(cfg); d.Dir != "/srv/hub/var/disb" || f.PartnersDir != "/srv/hub/fp" {
		t.Fatalf("resolved: disbursement.dir %q, funeral.partners_dir %q", d.Dir, f.PartnersDir)
	}
	// Both validate with the rest, all problems at once.
	cfg, err = config.Decode("test.yml", strings.NewReader("disbursement:\n  poll_every: 0s\nfuneral:\n  rate_burst: 0\n  cremation_warn_days: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, want := range []string{"disbursement.poll_every", "funeral.rate_burst", "funeral.cremation_warn_days"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
	// An unknown key inside a section names its line.
	_, err = config.Decode("test.yml", strings.NewReader("profile: embedded\ndisbursement:\n  person_key_secret: x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "person_key_secret") {
		t.Fatalf("unknown section key: %v", err)
	}
}

func TestReferenceGolden(t *testing.T) {
	got, err := config.Reference("..")
	if err != nil {
		t.Fatal(err)
	}
	golden := "../docs/config-reference.md"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./config -update)", err)
	}
	if string(want) != got {
		t.Fatalf("%s is stale: run go test ./config -update", golden)
	}
	for _, key := range []string{"`store.dsn`", "`MZHUB_STORE_DSN`", "`http.listen`", "`bus.pulsar.url`", "`monitor.clickhouse.addr`"} {
		if !strings.Contains(got, key) {
			t.Errorf("reference lacks %s", key)
		}
	}
	for _, s := range config.Sections() {
		if !strings.Contains(got, "### `"+s.Key+"`\n\n"+s.Doc) {
			t.Errorf("reference lacks section %s", s.Key)
		}
	}
}

func TestSchemaGolden(t *testing.T) {
	got, err := config.Schema("..")
	if err != nil {
		t.Fatal(err)
	}
	golden := "../docs/config.schema.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./config -update)", err)
	}
	if string(want) != string(got) {
		t.Fatalf("%s is stale: run go test ./config -update", golden)
	}
	for _, s := range config.Sections() {
		if !strings.Contains(string(got), `"`+s.Key+`": {`) {
			t.Errorf("schema lacks section %s", s.Key)
		}
	}
}

// TestEverySectionImported finds every package of the module that calls
// config.RegisterSection and checks that this test registered its section,
// i.e. that the imports above are complete: otherwise the golden reference
// would silently lack a section.
func TestEverySectionImported(t *testing.T) {
	var callers []string
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "vendor" || (strings.HasPrefix(n, ".") && n != "..") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "RegisterSection" {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "config" {
					rel, _ := filepath.Rel("..", filepath.Dir(p))
					callers = append(callers, modulePath+"/"+filepath.ToSlash(rel))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, s := range config.Sections() {
		registered = append(registered, reflect.TypeOf(s.Default()).PkgPath())
	}
	slices.Sort(callers)
	slices.Sort(registered)
	if len(callers) == 0 || !slices.Equal(slices.Compact(callers), registered) {
		t.Fatalf("packages registering a section %v, registered here %v: import the missing ones in this file", callers, registered)
	}
}
