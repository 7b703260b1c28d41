package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type readyzAnswer struct {
	Status     string            `json:"status"`
	Node       string            `json:"node"`
	Failing    []string          `json:"failing"`
	Checks     map[string]string `json:"checks"`
	Components map[string]string `json:"components"`
}

func getReadyz(t *testing.T, h *Hub) (int, readyzAnswer) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var a readyzAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("readyz body %q: %v", rec.Body.String(), err)
	}
	return rec.Code, a
}

// TestReadyzNamesEachDependency: /readyz reports every check and
// component by name; a failing dependency (the bus) makes it 503 naming
// it, a degraded one (the monitor store, whose events are buffered) is
// reported without failing readiness.
func TestReadyzNamesEachDependency(t *testing.T) {
	h := newReplica(t, replicaConfig(t, t.TempDir(), "ready-node"))
	defer h.Close(context.Background())
	busDown := errors.New("pulsar pulsar://127.0.0.1:6650: connection refused")
	var busErr error
	h.AddCheck("bus", func(context.Context) error { return busErr })
	h.AddCheck("monitor_store", func(context.Context) error {
		return fmt.Errorf("%w: events not stored since 2026-12-02T05:00:00Z, 12 buffered", ErrDegraded)
	})

	code, a := getReadyz(t, h)
	if code != http.StatusOK || a.Status != "ready" || a.Node != "ready-node" {
		t.Fatalf("all up but degraded monitor: %d %+v", code, a)
	}
	if a.Checks["store"] != "ok" || a.Checks["bus"] != "ok" || !strings.HasPrefix(a.Checks["monitor_store"], "degraded") {
		t.Fatalf("checks: %+v", a.Checks)
	}

	busErr = busDown
	code, a = getReadyz(t, h)
	if code != http.StatusServiceUnavailable || !slices.Equal(a.Failing, []string{"bus"}) || a.Checks["bus"] != busDown.Error() {
		t.Fatalf("bus down: %d %+v", code, a)
	}

	busErr = nil
	h.AddComponent("routes", ComponentFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	code, a = getReadyz(t, h)
	if code != http.StatusServiceUnavailable || !slices.Equal(a.Failing, []string{"component routes"}) || a.Components["routes"] != "not running" {
		t.Fatalf("component not running: %d %+v", code, a)
	}
}

// TestMissingDirsNamesTheKey: a configured directory that is not there is
// named with its configuration key (it fails readiness as "paths"), and the
// funeral registry follows paths.partners unless set on its own.
func TestMissingDirsNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg := replicaConfig(t, dir, "paths-node")
	if m := missingDirs(cfg); len(m) != 0 {
		t.Fatalf("the demo's shipped configuration: missing %v", m)
	}
	cfg.Paths.Partners = filepath.Join(dir, "elsewhere")
	m := missingDirs(cfg)
	want := []string{"paths.partners " + cfg.Paths.Partners, "funeral.partners_dir " + filepath.Join(cfg.Paths.Partners, "funeral")}
	if !slices.Equal(m, want) {
		t.Fatalf("missing: got %q, want %q", m, want)
	}
}
