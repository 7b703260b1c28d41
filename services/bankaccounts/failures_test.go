package bankaccounts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

type auditRec struct {
	mu sync.Mutex
	rs []audit.Record
}

func (a *auditRec) Append(_ context.Context, r audit.Record) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rs = append(a.rs, r)
	return int64(len(a.rs)), nil
}

// TestRetryOpening: two openings the bank refuses are listed with the
// bank's reason (masked) and leave their persons out; one is corrected
// (name) and retried, the other marked fixed with a note and retried:
// each retry goes into the bank's next opening file once (a second
// submit is refused), is audited, and once the bank opens the account the
// person is paid again and the failure is no longer blocking. Retries
// without a correction, of unknown or already retried requests, and with
// a bad division are refused.
func TestRetryOpening(t *testing.T) {
	e := start(t, nil, t.TempDir())
	ctx := context.Background()
	rec := &auditRec{}
	g := synth.New(31)
	wrong, fixed, good := g.Next(), g.Next(), g.Next()
	right := wrong.Name
	wrong.Name = right + "某" // the name the bureau sent (wrong)
	sim := e.sims["boc"]
	sim.FailPerson(wrong.ID, bank.OutcomeMismatch)
	sim.FailPerson(fixed.ID, bank.OutcomeIDInvalid)
	var rs []Request
	for i, p := range []synth.Person{wrong, fixed, good} {
		rs = append(rs, Request{ExtID: "open-" + string(rune('a'+i)), Bank: "boc", Op: bank.OpOpen, PersonID: p.ID, Name: p.Name, Division: p.Division})
	}
	if _, err := e.svc.Submit(ctx, rs); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	fs, err := e.svc.FailedOpenings(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("%d failed openings, want 2: %+v", len(fs), fs)
	}
	byID := map[string]FailedOpening{}
	for _, f := range fs {
		byID[f.IDMasked] = f
		if !f.Blocking || f.Retry != "" || f.Reason == "" || f.NameMasked == "" || strings.Contains(f.Reason+f.NameMasked, wrong.ID) {
			t.Fatalf("failure: %+v", f)
		}
	}
	fw := byID[maskID(wrong.ID)]
	ff := byID[maskID(fixed.ID)]
	if fw.Outcome != bank.OutcomeMismatch || ff.Outcome != bank.OutcomeIDInvalid {
		t.Fatalf("outcomes %q %q", fw.Outcome, ff.Outcome)
	}

	// Without an audit log, nothing is retried.
	if _, err := e.svc.RetryOpening(ctx, fw.Ref, OpeningFix{Name: right}, "olga"); !errors.Is(err, ErrNoAudit) {
		t.Fatalf("unaudited retry: %v", err)
	}
	e.svc.audit = rec
	for _, tc := range []struct {
		name string
		ref  string
		fix  OpeningFix
		want error
	}{
		{"nothing corrected", fw.Ref, OpeningFix{}, ErrNoCorrection},
		{"fixed without a note", fw.Ref, OpeningFix{Fixed: true}, ErrNoCorrection},
		{"the same name again", fw.Ref, OpeningFix{Name: wrong.Name}, ErrNoCorrection},
		{"a division outside Shanghai", fw.Ref, OpeningFix{Division: "110101"}, ErrBadCorrection},
		{"an unknown request", "ZH000", OpeningFix{Name: right}, ErrNotRetryable},
		{"a request that did not fail", refOf(t, e, "open-c"), OpeningFix{Name: right}, ErrNotRetryable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.svc.RetryOpening(ctx, tc.ref, tc.fix, "olga"); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if len(rec.rs) != 0 {
		t.Fatalf("refused retries audited as done: %+v", rec.rs)
	}
	// The bank's records are right now for both persons.
	sim.FailPerson(wrong.ID, "")
	sim.FailPerson(fixed.ID, "")
	r1, err := e.svc.RetryOpening(ctx, fw.Ref, OpeningFix{Name: right}, "olga")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.svc.RetryOpening(ctx, ff.Ref, OpeningFix{Fixed: true, Note: "bank corrected its ID records"}, "olga")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RetryOpening(ctx, fw.Ref, OpeningFix{Name: right}, "olga"); !errors.Is(err, ErrAlreadyRetried) {
		t.Fatalf("second retry: %v", err)
	}
	if len(rec.rs) != 2 || rec.rs[0].Action != "accounts.retry_opening" || rec.rs[0].Object != fw.Ref || rec.rs[0].Actor != "user:olga" ||
		!strings.Contains(rec.rs[0].Detail, r1) || !strings.Contains(rec.rs[1].Detail, "marked fixed") ||
		strings.Contains(rec.rs[0].Detail, wrong.ID) || strings.Contains(rec.rs[0].Detail, right) {
		t.Fatalf("audit: %+v", rec.rs)
	}
	fs, _ = e.svc.FailedOpenings(ctx, 100)
	for _, f := range fs {
		if !f.Blocking || f.RetryStatus != StatusQueued || (f.Retry != r1 && f.Retry != r2) {
			t.Fatalf("after the retries: %+v", f)
		}
	}
	// Still left out until the bank opens the accounts.
	if st, _, _ := e.state(t, wrong.ID, "boc"); st != StateOpenFailed {
		t.Fatalf("state %s before the bank answered", st)
	}
	before := sim.AccountsAnswered(bank.OpOpen)
	e.settle(t)
	if n := sim.AccountsAnswered(bank.OpOpen) - before; n != 2 {
		t.Fatalf("the bank answered %d retried openings, want 2", n)
	}
	for _, p := range []synth.Person{wrong, fixed} {
		if st, _, _ := e.state(t, p.ID, "boc"); st != StateOpened {
			t.Fatalf("state %s after the retry", st)
		}
	}
	// The name sent the second time is the corrected one.
	var name string
	if err := e.db.QueryRowContext(ctx, e.db.Rebind(`SELECT name_sealed FROM acct_requests WHERE ref = ?`), r1).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.fields.Decrypt(name); n != right {
		t.Fatalf("retried with name %q", n)
	}
	fs, _ = e.svc.FailedOpenings(ctx, 100)
	for _, f := range fs {
		if f.Blocking || f.RetryStatus != StatusDone {
			t.Fatalf("after the bank opened: %+v", f)
		}
	}
	if _, err := e.svc.RetryOpening(ctx, ff.Ref, OpeningFix{Fixed: true, Note: "again"}, "olga"); !errors.Is(err, ErrAlreadyRetried) {
		t.Fatalf("retry after opening: %v", err)
	}
}

func maskID(id string) string { return id[:3] + strings.Repeat("*", 11) + id[14:] }

func refOf(t *testing.T, e *env, ext string) string {
	t.Helper()
	var ref string
	if err := e.db.QueryRowContext(context.Background(), e.db.Rebind(`SELECT ref FROM acct_requests WHERE ext_id = ?`), ext).Scan(&ref); err != nil {
		t.Fatal(err)
	}
	return ref
}
