package routes_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
)

// durableEvents records events; EmitDurable fails while down is set and
// otherwise records its events as durable.
type durableEvents struct {
	monitortest.Recorder
	mu      sync.Mutex
	down    bool
	durable []monitor.Event
}

func (d *durableEvents) EmitDurable(_ context.Context, evs ...monitor.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return errors.New("spool down")
	}
	d.durable = append(d.durable, evs...)
	for _, ev := range evs {
		d.Emit(ev)
	}
	return nil
}

func (d *durableEvents) durableCount() int { d.mu.Lock(); defer d.mu.Unlock(); return len(d.durable) }

// TestHTTPSourceAnswersAfterItsEventIsDurable: an accepted message's
// received event is durable before the partner gets 202 (a crash cannot
// leave an accepted exchange without its event); when it cannot be made
// durable, the partner gets 503 and resends.
func TestHTTPSourceAnswersAfterItsEventIsDurable(t *testing.T) {
	synctest.Test(t, testHTTPSourceAnswersAfterItsEventIsDurable)
}

func testHTTPSourceAnswersAfterItsEventIsDurable(t *testing.T) {
	route := `id: push
partner: funeral.fh01
from: {kind: http}
idempotency_key: body.id
to:
  - kind: record
    config: {name: out}
`
	ev := &durableEvents{}
	h := startDeps(t, map[string]string{"push.yaml": route}, func(d *routes.Deps) { d.Events = ev }, httpx.Spec())
	waitFor(t, "route", func() bool { return len(h.eng.Routes()) == 1 })
	post := func(body string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/routes/push", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.eng.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(`{"id":"a1"}`); code != http.StatusAccepted {
		t.Fatalf("POST: %d", code)
	}
	if n := ev.durableCount(); n != 1 {
		t.Fatalf("answered 202 with %d durable received events, want 1", n)
	}
	ev.mu.Lock()
	ev.down = true
	ev.mu.Unlock()
	if code := post(`{"id":"a2"}`); code != http.StatusServiceUnavailable {
		t.Fatalf("POST with the spool down: %d, want 503 (the partner resends)", code)
	}
}
