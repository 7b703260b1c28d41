package routes_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
)

// TestHTTPSourceThroughHandler: a partner's POST to /routes/<id> is answered
// 202 once the message is on the bus, and reaches the sink.
func TestHTTPSourceThroughHandler(t *testing.T) {
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
	srv := httptest.NewServer(h.eng.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/routes/push", `{"id":"a1"}`, http.StatusAccepted},
		{"/routes/push", `{"id":"a1"}`, http.StatusAccepted}, // a resend: accepted, delivered once
		{"/routes/push", `{"x":1}`, http.StatusAccepted},     // refused later by validate: dead letter
		{"/routes/nosuch", `{}`, http.StatusNotFound},
	} {
		resp, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s %s: %d, want %d", tc.path, tc.body, resp.StatusCode, tc.want)
		}
	}
	out := h.sinks.Recorder("out")
	waitFor(t, "delivery and dead letter", func() bool { return len(out.Got()) == 1 && h.events.CountType(monitor.DeadLettered) == 1 })
	if h.events.CountType(monitor.Received) != 3 {
		t.Errorf("received events = %d, want 3", h.events.CountType(monitor.Received))
	}
}
