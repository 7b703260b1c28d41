package hub_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/accounts"
)

// TestConsoleDrawsTheRunningTopology starts a hub whose routes directory
// holds a chain of two routes (a schedule feeding a topic a second route
// delivers to a partner) and a route publishing a topic nothing reads.
// The console's topology page shows the running routes, the registered
// services and the declared external topic, the chain's edges with
// traffic, and the dangling topic at its route's file and line.
func TestConsoleDrawsTheRunningTopology(t *testing.T) {
	delivered := make(chan struct{}, 1000)
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case delivered <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer partner.Close()
	dir := t.TempDir()
	routesDir := filepath.Join(dir, "routes")
	if err := os.MkdirAll(routesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"tick.yaml": `id: district-tick
partner: district
flow: tick
from: {kind: schedule, config: {every: 20ms, body: '{"n":1}'}}
to:
  - kind: bus
    config: {topic: district.ticks}
`,
		"deliver.yaml": `id: district-deliver
partner: district
flow: tick
from: {kind: bus, config: {topic: district.ticks}}
to:
  - kind: http
    config: {url: "` + partner.URL + `/ticks"}
`,
		"dangling.yaml": `id: district-orphan
partner: district
flow: orphan
from: {kind: schedule, config: {every: 1h}}
to:
  - kind: bus
    config: {topic: district.orphans}
`,
		"topics.yaml": `topics:
  - topic: funeral.changes
    external: consumer
    system: 殡葬管理平台
    reason: the platform reads the bus
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(routesDir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := hubtest.Start(t, hubtest.Options{Dir: filepath.Join(dir, "hub"), Configure: func(c *config.Config) { c.Paths.Routes = routesDir }})
	ops := srv.Console(t, "olga", accounts.RoleOperator)
	// A first view takes a sample; deliveries after it are traffic the
	// second view measures.
	if code, _ := ops.Page("/console/topology"); code != 200 {
		t.Fatalf("topology page: %d", code)
	}
	for len(delivered) > 0 {
		<-delivered
	}
	// The sink counts a delivery after the partner answered: a view shows
	// the traffic once a delivery after the first view is counted.
	busy := `<tr class="busy" data-from="route:district-deliver" data-to="partner:district@out">`
	timeout := time.After(30 * time.Second)
	var page string
	for !strings.Contains(page, busy) {
		select {
		case <-delivered:
		case <-timeout:
			t.Fatalf("no traffic on the delivering route's edge:\n%s", page)
		}
		var code int
		if code, page = ops.Page("/console/topology"); code != 200 {
			t.Fatalf("topology page: %d\n%s", code, page)
		}
	}
	for _, want := range []string{
		`data-from="partner:district@in" data-to="route:district-tick"`,
		`data-from="route:district-tick" data-to="topic:district.ticks"`,
		`data-from="topic:district.ticks" data-to="route:district-deliver"`,
		`data-from="route:district-deliver" data-to="partner:district@out"`,
		`data-from="service:funeral" data-to="topic:funeral.changes"`,
		`data-from="topic:funeral.changes" data-to="external:殡葬管理平台"`,
		`data-from="service:disbursement" data-to="partner:banks@out"`,
		"悬空主题", filepath.Join(routesDir, "dangling.yaml") + ":7",
		`topic &#34;district.orphans&#34; is produced by route district-orphan but nothing consumes it`,
		"services/funeral/topology.go:",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("topology page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
}
