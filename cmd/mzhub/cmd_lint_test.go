package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/topology"
)

// TestLintTopology runs mzhub lint on config sets whose topology is
// closed or dangling: each dangling topic is reported at the route (or
// declaration) with its file, line and topic, and nothing else is.
func TestLintTopology(t *testing.T) {
	dangling := filepath.Join("testdata", "topology", "dangling", "routes")
	for _, tc := range []struct {
		name string
		dir  string
		code int
		want []string
	}{
		{name: "closed", dir: filepath.Join("testdata", "topology", "ok"), code: 0},
		{name: "dangling", dir: filepath.Join("testdata", "topology", "dangling"), code: 1, want: []string{
			filepath.Join(dangling, "answers.yaml") + `:8: topic "verification.results" is consumed by route verification-answers but nothing produces it: no route or service publishes it (if a system outside the hub does, declare it in topics.yaml with external: producer)`,
			filepath.Join(dangling, "requests.yaml") + `:11: topic "verification.requests" is produced by route verification-requests but nothing consumes it: no route or service reads it (if a system outside the hub does, declare it in topics.yaml with external: consumer)`,
			filepath.Join(dangling, "topics.yaml") + `:6: topic "ministry.requests" is declared external (producer, ministry platform) but no route or service of the hub uses it`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, "lint", tc.dir)
			if code != tc.code {
				t.Fatalf("lint %s exited %d, want %d:\n%s%s", tc.dir, code, tc.code, out, stderr)
			}
			got := strings.Split(strings.TrimSpace(out), "\n")
			if len(tc.want) == 0 {
				got = nil
				if strings.TrimSpace(out) != "" {
					got = []string{out}
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lint %s printed\n%s\nwant\n%s", tc.dir, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestLintTopologyKnowsTheServices checks that the registered services'
// topics take part: funeral.changes is the funeral service's, so the
// declaration of its external reader is in use only with the services, and
// without that declaration the topic is produced and never consumed.
func TestLintTopologyKnowsTheServices(t *testing.T) {
	files := []string{filepath.Join("testdata", "topology", "ok", "routes", "chain.yaml")}
	if ps := lintTopology(files, topology.Services()); len(ps) != 0 {
		t.Fatalf("with the services: %v", ps)
	}
	// Without the services every declaration of a service's topic dangles
	// (funeral.changes, datasea.records).
	ps := lintTopology(files, nil)
	unused := 0
	for _, p := range ps {
		if strings.Contains(p.Message, `topic "funeral.changes" is declared external`) {
			unused++
		}
	}
	if unused != 1 {
		t.Fatalf("without the services: %v", ps)
	}
	code, out, _ := runCLI(t, "lint", filepath.Join("testdata", "topology", "services", "routes"))
	if code != 1 || !strings.Contains(out, "services/funeral/topology.go:") ||
		!strings.Contains(out, `topic "funeral.changes" is produced by service funeral but nothing consumes it`) {
		t.Fatalf("lint without the declaration exited %d:\n%s", code, out)
	}
}

// TestEveryServiceDeclaresItsTopology checks that each package under
// services/ registers its topology declaration (topology.RegisterService,
// named after its directory), so lint and the console know its topics and
// partners: a new service without one fails here.
func TestEveryServiceDeclaresItsTopology(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("..", "..", "services"))
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, s := range topology.Services() {
		declared[s.Name] = true
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		if !declared[e.Name()] {
			t.Errorf("services/%s registers no topology declaration (topology.RegisterService in its init, see services/funeral/topology.go)", e.Name())
		}
	}
	if n == 0 {
		t.Fatal("no service found")
	}
}
