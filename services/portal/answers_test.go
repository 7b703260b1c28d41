package portal

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
)

// TestAnswersSettleTheBatch applies the answers a portal route publishes
// (and the failure answers of a batch it dead-lettered) to the rows of the
// batch: each by its class, and an answer to a batch no longer waiting
// changes nothing. No route runs: the answers are given by hand.
func TestAnswersSettleTheBatch(t *testing.T) {
	okAnswer := func(outcome, reason string) []byte {
		b, _ := json.Marshal(joblib.Answer{Op: joblib.OpConfirm, Results: []joblib.Result{{ID: "MSC-0001", Outcome: outcome, Reason: reason}}})
		return b
	}
	for _, tc := range []struct {
		name    string
		headers map[string]string
		body    []byte
		state   string
	}{
		{"delivered", map[string]string{routes.HeaderReplyStatus: routes.ReplyOK}, okAnswer(joblib.OutcomeOK, ""), stateDelivered},
		{"duplicate after a lookup", map[string]string{routes.HeaderReplyStatus: routes.ReplyOK, routes.HeaderReplyVia: routes.ReplyViaLookup}, okAnswer(joblib.OutcomeDuplicate, ""), stateDelivered},
		{"refused by the portal", map[string]string{routes.HeaderReplyStatus: routes.ReplyOK}, okAnswer(joblib.OutcomeClosed, "案件已关闭"), stateFailed},
		{"out of order", map[string]string{routes.HeaderReplyStatus: routes.ReplyOK}, okAnswer(joblib.OutcomeOutOfOrder, "earlier first"), statePending},
		{"not readable", map[string]string{routes.HeaderReplyStatus: routes.ReplyOK}, []byte(`{"op":"confirm"}`), statePending},
		{"failure, permanent", map[string]string{routes.HeaderReplyStatus: routes.ReplyFailed, routes.HeaderReplyClass: "permanent", routes.HeaderReplyError: "401 bad signature"}, nil, stateFailed},
		{"failure, transient", map[string]string{routes.HeaderReplyStatus: routes.ReplyFailed, routes.HeaderReplyClass: "transient", routes.HeaderReplyError: "503"}, nil, statePending},
		{"failure, in doubt", map[string]string{routes.HeaderReplyStatus: routes.ReplyFailed, routes.HeaderReplyClass: "in_doubt", routes.HeaderReplyError: "timeout"}, nil, statePending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := routetest.NewBus()
			e := &env{t: t, dir: dir, db: openDB(t, dir), bus: &countBus{Bus: b, n: map[string]int{}}, clk: clockAt(), ring: testRing(t),
				events: &recEvents{}, pay: &fakePayments{reconciled: map[string]bool{}}}
			e.cfg = testConfig(dir, "http://127.0.0.1:1")
			e.svc = e.open()
			ctx := context.Background()
			if err := e.db.InTx(ctx, func(tx *sql.Tx) error {
				return e.svc.queueConfirmation(ctx, tx, "MSC-0001", joblib.DecisionConfirm, "", true, e.clk.Now())
			}); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			out := b.Published(TopicOutConfirm)
			if len(out) != 1 || out[0].IdempotencyKey == "" || out[0].Headers[HeaderBatch] != out[0].IdempotencyKey {
				t.Fatalf("published %+v", out)
			}
			// The answer keeps the request's headers (the engine copies them).
			h := map[string]string{}
			for k, v := range out[0].Headers {
				h[k] = v
			}
			for k, v := range tc.headers {
				h[k] = v
			}
			msg := bus.Message{Key: out[0].Key, IdempotencyKey: out[0].IdempotencyKey + "/reply", Headers: h, Body: tc.body}
			if err := e.svc.applyAnswer(ctx, msg); err != nil {
				t.Fatal(err)
			}
			var state, reason string
			if err := e.db.QueryRow(`SELECT state, error FROM portal_outbox`).Scan(&state, &reason); err != nil {
				t.Fatal(err)
			}
			if state != tc.state || (state != stateDelivered && reason == "") {
				t.Fatalf("state %s (%q), want %s with a reason", state, reason, tc.state)
			}
			// Applied again (a redelivery): nothing changes.
			if err := e.svc.applyAnswer(ctx, msg); err != nil {
				t.Fatal(err)
			}
			var again string
			if err := e.db.QueryRow(`SELECT state FROM portal_outbox`).Scan(&again); err != nil || again != state {
				t.Fatalf("after a redelivered answer: %s %v", again, err)
			}
			// A row back to pending goes under a new key.
			if state == statePending {
				e.clk.Advance(2 * e.cfg.RetryMaxWait)
				if err := e.svc.Drain(ctx); err != nil {
					t.Fatal(err)
				}
				if out := b.Published(TopicOutConfirm); len(out) != 2 || out[1].IdempotencyKey == out[0].IdempotencyKey {
					t.Fatalf("sent again: %+v", out)
				}
			}
		})
	}
}

// TestRestartRepublishesUnderTheSameKey: a batch published before a stop
// (or one a crash kept from the bus) is published again by the next run
// under its key, which the route's delivery ledger delivers once; it is
// not republished while its answer is awaited.
func TestRestartRepublishesUnderTheSameKey(t *testing.T) {
	dir := t.TempDir()
	b := routetest.NewBus()
	e := &env{t: t, dir: dir, db: openDB(t, dir), bus: &countBus{Bus: b, n: map[string]int{}}, clk: clockAt(), ring: testRing(t),
		events: &recEvents{}, pay: &fakePayments{reconciled: map[string]bool{}}}
	e.cfg = testConfig(dir, "http://127.0.0.1:1")
	e.svc = e.open()
	ctx := context.Background()
	if err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		return e.svc.queueConfirmation(ctx, tx, "MSC-0001", joblib.DecisionConfirm, "", true, e.clk.Now())
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.svc.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if out := b.Published(TopicOutConfirm); len(out) != 1 {
		t.Fatalf("published %d while the answer is awaited, want 1", len(out))
	}
	// The next run.
	e.svc = e.open()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = e.svc.Run(rctx) }()
	e.waitFor("the batch published again", func() bool { return len(b.Published(TopicOutConfirm)) == 2 })
	cancel()
	<-done
	out := b.Published(TopicOutConfirm)
	if out[1].IdempotencyKey != out[0].IdempotencyKey || string(out[1].Body) != string(out[0].Body) {
		t.Fatalf("republished as %q, first %q", out[1].IdempotencyKey, out[0].IdempotencyKey)
	}
}
