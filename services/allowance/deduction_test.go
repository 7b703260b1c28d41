package allowance_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestClawbackDeductions runs claw-backs through two quarters of
// deduction: each open item is listed once (a line of its own to the
// account paid, or added to the person's submitted line), the bank's
// results settle them (deducted closed; failed open again with the
// reason and listed next quarter), a person confirmed alive is never
// deducted, a redo lists the same, settling twice changes nothing.
func TestClawbackDeductions(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
		g := synth.New(31)
		paid, fails, alive, onList, other := g.Next(), g.Next(), g.Next(), g.Next(), g.Next()
		var recs []datasea.Record
		for i, p := range []synth.Person{paid, fails, alive, onList} {
			recs = append(recs, datasea.Record{ID: "D" + string(rune('1'+i)), Kind: datasea.Death, IDNumber: p.ID, Name: p.Name, Date: "2026-09-10", District: p.Division})
		}
		if _, err := s.Apply(ctx, "api", recs, nil); err != nil {
			t.Fatal(err)
		}
		// December's list: October and November were paid after the deaths.
		screen(t, s, "2026-12", listLine(paid, "2026-11"), listLine(fails, "2026-11"), listLine(alive, "2026-11"), listLine(onList, "2026-11"), listLine(other, "2026-11"))
		if ov, _ := s.Overview(ctx); ov.Clawbacks != 8 {
			t.Fatalf("claw-backs %+v", ov)
		}
		if _, err := s.ConfirmAlive(ctx, alive.ID, "olga", "seen at the office"); err != nil {
			t.Fatal(err)
		}

		// The quarter's deduction list as submitted holds onList (another deduction of theirs).
		d := s.Deductions()
		submitted := header + "\n" + onList.ID + "," + onList.Name + "," + onList.Account + "," + synth.Banks[onList.Bank].Code + "," + onList.Division + ",500," + onList.Standard + ",,\n"
		deduct := func(period string) (string, string) {
			t.Helper()
			var out, rep bytes.Buffer
			if _, _, _, err := d.Screen(ctx, period, strings.NewReader(submitted), &out, &rep); err != nil {
				t.Fatal(err)
			}
			return out.String(), rep.String()
		}
		out, rep := deduct("2026-12")
		two := func(p synth.Person) int64 { return 2 * p.AmountFen }
		for _, want := range []string{
			onList.ID + "," + onList.Name + "," + onList.Account + "," + synth.Banks[onList.Bank].Code + "," + onList.Division + "," + itoa(500+two(onList)) + ",",
			paid.ID + "," + paid.Name + "," + paid.Account + "," + synth.Banks[paid.Bank].Code + "," + paid.Division + "," + itoa(two(paid)) + "," + paid.Standard + ",,",
			fails.ID + "," + fails.Name + "," + fails.Account + "," + synth.Banks[fails.Bank].Code + "," + fails.Division + "," + itoa(two(fails)) + "," + fails.Standard + ",,",
		} {
			if strings.Count(out, want) != 1 {
				t.Fatalf("no line %q in\n%s", want, out)
			}
		}
		if strings.Contains(out, alive.ID) || strings.Count(out, "\n") != 4 || strings.Contains(rep, paid.ID) || strings.Count(rep, "claw_back,") != 3 {
			t.Fatalf("deduction list:\n%s\nreport:\n%s", out, rep)
		}
		if again, _ := deduct("2026-12"); again != out {
			t.Fatalf("redo differs:\n%s", again)
		}
		// Listed items are not listed by another period while they wait for the bank.
		if other, _ := deduct("2027-03"); strings.Contains(other, paid.ID) {
			t.Fatal("an item waiting for its result listed again")
		}

		// Not reconciled yet: nothing settles.
		results := map[string]allowance.DeductionOutcome{
			paid.ID: {Deducted: true}, onList.ID: {Deducted: true}, fails.ID: {Reason: "余额不足 insufficient balance"},
		}
		reconciled := false
		asked := 0
		outcomes := func(_ context.Context, period string, ids []string) (map[string]allowance.DeductionOutcome, bool, error) {
			asked++
			if !reconciled {
				return nil, false, nil
			}
			return results, true, nil
		}
		if st, err := s.SettleDeductions(ctx, "2026-12", outcomes); err != nil || st != (allowance.Settled{}) {
			t.Fatalf("settled before reconciliation: %+v %v", st, err)
		}
		reconciled = true
		st, err := s.SettleDeductions(ctx, "2026-12", outcomes)
		if err != nil || st != (allowance.Settled{Deducted: 4, Failed: 2}) {
			t.Fatalf("settled %+v %v", st, err)
		}
		n := asked
		if st, err := s.SettleDeductions(ctx, "2026-12", outcomes); err != nil || st != (allowance.Settled{}) || asked != n {
			t.Fatalf("settled twice: %+v %v", st, err)
		}
		items, _ := s.Items(ctx, "clawback", 20)
		states := map[string]int{}
		for _, it := range items {
			states[it.State]++
			if it.State == "open" && !strings.Contains(it.Detail, "deduction 2026-12 failed: 余额不足") {
				t.Fatalf("failed item without its reason: %+v", it)
			}
		}
		if states["deducted"] != 4 || states["open"] != 2 || states["cancelled"] != 2 {
			t.Fatalf("states %v", states)
		}

		// The next quarter: only the failed person, once.
		submitted = header + "\n"
		out, _ = deduct("2027-03")
		if strings.Count(out, "\n") != 2 || !strings.Contains(out, fails.ID+",") || strings.Contains(out, paid.ID) || strings.Contains(out, alive.ID) {
			t.Fatalf("next quarter:\n%s", out)
		}
		results = map[string]allowance.DeductionOutcome{fails.ID: {Deducted: true}}
		if st, err := s.SettleDeductions(ctx, "2027-03", outcomes); err != nil || st != (allowance.Settled{Deducted: 2}) {
			t.Fatalf("next quarter settled %+v %v", st, err)
		}
		if ov, _ := s.Overview(ctx); ov.Clawbacks != 0 {
			t.Fatalf("outstanding claw-backs after two quarters: %+v", ov)
		}
		if out, _ = deduct("2027-06"); strings.Count(out, "\n") != 1 {
			t.Fatalf("a settled item listed again:\n%s", out)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
