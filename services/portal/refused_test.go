package portal

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/security/audit"
)

type recAudit struct{ got []audit.Record }

func (r *recAudit) Append(_ context.Context, rec audit.Record) (int64, error) {
	r.got = append(r.got, rec)
	return int64(len(r.got)), nil
}

// TestRefusedRowRetriedOrSkippedByAnOperator: a node the portal refuses
// holds back the later nodes of its application until an operator retries it (it goes, then the later ones) or skips it
// (the later ones go without it). Each action is audited; acting on a row
// that is not refused is refused.
func TestRefusedRowRetriedOrSkippedByAnOperator(t *testing.T) {
	e := newEnv(t, joblibsim.Options{}, nil)
	rec := &recAudit{}
	e.svc.d.Audit = rec
	a, b := idFor("310104", "19700101", 1), idFor("310105", "19710101", 2)
	e.sim.AddApplication(application("SBTEST000001", "MZ-GZFSQ", joblib.ChannelWeb, a, "310104"))
	e.sim.AddApplication(application("SBTEST000002", "MZ-GZFSQ", joblib.ChannelApp, b, "310105"))
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	// The portal refuses the first 受理 it sees; each application's 办理 waits behind it.
	e.sim.SetFaults(joblibsim.Faults{RefuseNodes: 1})
	e.drop("status-001.csv", func(w io.Writer) error {
		_, err := io.WriteString(w, StatusHeader+"\n"+
			"SBTEST000001,accepted,accepted,,,\n"+
			"SBTEST000001,processing,,,,\n")
		return err
	})
	for range 3 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sim.Nodes("SBTEST000001"); len(n) != 1 {
		t.Fatalf("nodes at the portal after the refusal: %+v", n)
	}
	ctx := context.Background()
	rows, err := e.svc.RefusedRows(ctx, 10)
	if err != nil || len(rows) != 1 || rows[0].Key != "SBTEST000001" || rows[0].Blocked != 1 || rows[0].Error == "" {
		t.Fatalf("refused rows %+v, %v", rows, err)
	}
	if err := e.svc.ResolveRefused(ctx, rows[0].ID, "resend", "olga"); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("an unknown action: %v", err)
	}
	if err := e.svc.ResolveRefused(ctx, rows[0].ID, ActionRetry, "olga"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResolveRefused(ctx, rows[0].ID, ActionRetry, "olga"); !errors.Is(err, ErrNoRow) {
		t.Fatalf("a row acted on twice: %v", err)
	}
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Nodes("SBTEST000001"); len(n) != 3 || n[1].Node != joblib.NodeAccepted || n[2].Node != joblib.NodeProcessing {
		t.Fatalf("after the retry, nodes at the portal: %+v", n)
	}

	// Skip: the portal refuses 受理 of the second application; the operator
	// gives it up and 办理 goes (the portal answers it as it sees fit).
	e.sim.SetFaults(joblibsim.Faults{RefuseNodes: 1})
	e.drop("status-002.csv", func(w io.Writer) error {
		_, err := io.WriteString(w, StatusHeader+"\n"+
			"SBTEST000002,accepted,accepted,,,\n"+
			"SBTEST000002,processing,,,,\n")
		return err
	})
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	rows, err = e.svc.RefusedRows(ctx, 10)
	if err != nil || len(rows) != 1 || rows[0].Key != "SBTEST000002" {
		t.Fatalf("refused rows %+v, %v", rows, err)
	}
	// 办理 went in the same call behind 受理 (answered out of order); while
	// 受理 stays refused it is not sent again.
	attempts := func() int64 {
		return e.count(`SELECT attempts FROM portal_outbox WHERE kind = 'node' AND ref = 'SBTEST000002#3'`)
	}
	held := attempts()
	for range 3 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if n := attempts(); n != held {
		t.Fatalf("办理 sent %d more times while 受理 was refused", n-held)
	}
	if err := e.svc.ResolveRefused(ctx, rows[0].ID, ActionSkip, "olga"); err != nil {
		t.Fatal(err)
	}
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := attempts(); n == held {
		t.Fatal("办理 still held back after its refused 受理 was skipped")
	}
	if rows, _ := e.svc.RefusedRows(ctx, 10); len(rows) != 0 {
		t.Fatalf("refused rows left: %+v", rows)
	}
	var actions []string
	for _, r := range rec.got {
		actions = append(actions, r.Action+":"+r.Outcome)
	}
	want := []string{"portal.outbox.retry:success", "portal.outbox.retry:failure", "portal.outbox.skip:success"}
	if len(actions) != len(want) {
		t.Fatalf("audited %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audited %v, want %v", actions, want)
		}
	}
}
