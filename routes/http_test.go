package routes_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
)

// TestHTTPSourceThroughHandler: a partner's POST to /routes/<id> is answered
// 202 once the message is on the bus, and reaches the sink.
func TestHTTPSourceThroughHandler(t *testing.T) { synctest.Test(t, testHTTPSourceThroughHandler) }

func testHTTPSourceThroughHandler(t *testing.T) {
	route := `id: push
partner: funeral.fh01
from: {kind: http}
idempotency_key: body.id
steps:
  - validate: {required: [id]}
to:
  - kind: record
    config: {name: out}
`
	h := startWith(t, map[string]string{"push.yaml": route}, httpx.Spec())
	waitFor(t, "route", func() bool { return len(h.eng.Routes()) == 1 })
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/routes/push", `{"id":"a1"}`, http.StatusAccepted},
		{"/routes/push", `{"id":"a1"}`, http.StatusAccepted}, // a resend: accepted, delivered once
		{"/routes/push", `{"x":1}`, http.StatusAccepted},     // refused later by validate: dead letter
		{"/routes/nosuch", `{}`, http.StatusNotFound},
	} {
		// The handler is called directly: no socket in the bubble.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		h.eng.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("POST %s %s: %d, want %d", tc.path, tc.body, rec.Code, tc.want)
		}
	}
	out := h.sinks.Recorder("out")
	waitFor(t, "delivery and dead letter", func() bool { return len(out.Got()) == 1 && h.events.CountType(monitor.DeadLettered) == 1 })
	if h.events.CountType(monitor.Received) != 3 {
		t.Errorf("received events = %d, want 3", h.events.CountType(monitor.Received))
	}
}
