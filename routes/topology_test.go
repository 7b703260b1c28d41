package routes_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	_ "github.com/shanghai-mca/mzhub/connectors/httpx" // the http kind
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/topology"
)

// TestTopologyOfRoutes checks what the topology reads of route files: the
// topics of bus endpoints with their lines, the engine's default sink
// names, the instance line of a template's route, and that topics.yaml is
// no route.
func TestTopologyOfRoutes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"push.yaml": `id: push
partner: district
flow: reports
from:
  kind: http
to:
  - kind: bus
    config: {topic: reports.in}
  - kind: bus
    config:
      topic: reports.audit
  - name: archive
    kind: http
    config: {url: "https://archive.example.sh.cn/"}
`,
		"relay.template.yaml": `template: relay
params:
  - name: topic
route:
  id: relay-${topic}
  partner: district
  flow: reports
  from:
    kind: bus
    config: {topic: "${topic}"}
  to:
    - kind: http
      config: {url: "https://district.example.sh.cn/"}
`,
		"relays.yaml":             "use: relay\ninstances:\n  - {topic: reports.in}\n  - {topic: reports.audit}\n",
		topology.DeclarationsFile: "topics:\n  - {topic: x, external: consumer, system: s, reason: r}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rs, errs := routes.LoadDir(dir)
	if errs != nil {
		t.Fatal(errs)
	}
	got := routes.Topology(rs)
	push, relays := filepath.Join(dir, "push.yaml"), filepath.Join(dir, "relays.yaml")
	want := []topology.Route{
		{ID: "push", Partner: "district", Flow: "reports", File: push, Line: 1, From: topology.End{Kind: "http", Line: 5},
			To: []topology.End{
				{Name: "bus", Kind: "bus", Topic: "reports.in", Line: 8},
				{Name: "bus-2", Kind: "bus", Topic: "reports.audit", Line: 11},
				{Name: "archive", Kind: "http", Line: 14},
			}},
		{ID: "relay-reports.in", Partner: "district", Flow: "reports", File: relays, Line: 3,
			From: topology.End{Kind: "bus", Topic: "reports.in", Line: 3}, To: []topology.End{{Name: "http", Kind: "http", Line: 3}}},
		{ID: "relay-reports.audit", Partner: "district", Flow: "reports", File: relays, Line: 4,
			From: topology.End{Kind: "bus", Topic: "reports.audit", Line: 4}, To: []topology.End{{Name: "http", Kind: "http", Line: 4}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("topology\n%+v\nwant\n%+v", got, want)
	}
	if ps := topology.Build(topology.Input{Routes: got}).Check(); len(ps) != 0 {
		t.Errorf("closed topology: %v", ps)
	}
}
