package hubmon_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/hubmon"
	"github.com/shanghai-mca/mzhub/store/lease"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// knownMetrics registers every monitor metric and returns their names.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	cfg := monitor.DefaultConfig()
	cfg.SQLitePath = filepath.Join(t.TempDir(), "m.db")
	reg := prometheus.NewRegistry()
	m, err := hubmon.New(context.Background(), cfg, hubmon.Deps{Metrics: reg, State: storetest.Open(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	// The hub's lease metrics (which replica runs the periodic jobs).
	if _, err := lease.New(context.Background(), storetest.Open(t), lease.Options{Node: "n1", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	// Vector metrics appear in Describe, not in Gather, until used.
	ch := make(chan *prometheus.Desc, 100)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if len(names) < 10 {
		t.Fatalf("only %d metrics registered", len(names))
	}
	return names
}

var metricRef = regexp.MustCompile(`mzhub_[a-z_]+`)

func checkRefs(t *testing.T, file, text string, known map[string]bool) {
	t.Helper()
	refs := metricRef.FindAllString(text, -1)
	if len(refs) == 0 {
		t.Errorf("%s references no mzhub metric", file)
	}
	for _, r := range refs {
		base := r
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(r, suf) && known[strings.TrimSuffix(r, suf)] {
				base = strings.TrimSuffix(r, suf)
			}
		}
		if !known[base] {
			t.Errorf("%s uses %s, which mzhub does not export", file, r)
		}
	}
}

func TestPrometheusRulesUseExportedMetrics(t *testing.T) {
	known := knownMetrics(t)
	const file = "../../deploy/prometheus/mzhub-monitor.rules.yml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v incomplete", r)
			}
			checkRefs(t, file+" "+r.Alert, r.Expr, known)
		}
	}
	if n < 8 {
		t.Errorf("%d rules", n)
	}
}

func TestGrafanaDashboardsUseExportedMetrics(t *testing.T) {
	known := knownMetrics(t)
	files, _ := filepath.Glob("../../deploy/grafana/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID    string `json:"uid"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || len(d.Panels) == 0 {
			t.Errorf("%s: no uid or panels", f)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				checkRefs(t, f+" "+p.Title, tg.Expr, known)
			}
		}
	}
}
