package portal

import (
	"io"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
)

// TestDisabilityPayoutsFromThePaidFile: the severe-disability nursing
// subsidy is paid outside the allowance disbursement; its payouts come from
// the business system's paid file of the month. Nothing is reported before
// the month's file arrives; a paid person gets one payout with the file's
// amount; a failed payment and a person not in the file get none (and are
// looked for in the next months, then closed without one); bad lines are
// refused with their numbers and never applied.
func TestDisabilityPayoutsFromThePaidFile(t *testing.T) {
	e := newEnv(t, joblibsim.Options{ConsentPercent: 100}, nil)
	p1, p2, p3 := idFor("310104", "19600101", 1), idFor("310105", "19610101", 2), idFor("310106", "19620101", 3)
	e.register("MZ-ZDCJHL", "2026-12", []EligibleRecord{
		NewEligible(p1, "王伟", "310104", "shanghai", 1, ""),
		NewEligible(p2, "李娜", "310105", "shanghai", 2, ""),
		NewEligible(p3, "周明", "310106", "shanghai", 1, ""),
	})
	for range 3 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{p1, p2, p3} {
		if d := e.sim.Decision(e.caseOf(p).CaseID); d == nil || d.Decision != "confirm" {
			t.Fatalf("case of %s: %+v", p[:6], d)
		}
	}
	if len(e.sim.Payouts(e.caseOf(p1).CaseID)) != 0 {
		t.Fatal("a payout before the month's paid file")
	}
	e.drop("paid-MZ-ZDCJHL-2026-12.csv", func(w io.Writer) error {
		_, err := io.WriteString(w, PaidHeader+"\n"+
			p1+",30000,paid,\n"+ // 2
			p2+",30000,failed,账户已销户\n"+ // 3
			"310104196001010000,30000,paid,\n"+ // 4 bad check digit
			p1+",30000,paid,\n"+ // 5 twice
			p3+",-1,paid,\n") // 6 bad amount
		return err
	})
	for range 2 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	if ps := e.sim.Payouts(e.caseOf(p1).CaseID); len(ps) != 1 || ps[0].AmountFen != 30000 || ps[0].Month != "2026-12" {
		t.Fatalf("payout of the paid person: %+v", ps)
	}
	for _, p := range []string{p2, p3} {
		if ps := e.sim.Payouts(e.caseOf(p).CaseID); len(ps) != 0 {
			t.Fatalf("a payout without a payment: %+v", ps)
		}
	}
	rows, err := e.db.Query(`SELECT line, reason FROM portal_refused WHERE source = 'inbox:paid-MZ-ZDCJHL-2026-12.csv' ORDER BY line`)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int64
	for rows.Next() {
		var l int64
		var r string
		if err := rows.Scan(&l, &r); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r, p1) || r == "" {
			t.Fatalf("line %d reason %q", l, r)
		}
		lines = append(lines, l)
	}
	rows.Close()
	if len(lines) != 3 || lines[0] != 4 || lines[1] != 5 || lines[2] != 6 {
		t.Fatalf("refused lines %v, want 4 5 6", lines)
	}
	// The next months' files: p2 paid in January; p3 never, closed after payout_months.
	for _, m := range []string{"2027-01", "2027-02"} {
		e.drop("paid-MZ-ZDCJHL-"+m+".csv", func(w io.Writer) error {
			_, err := io.WriteString(w, PaidHeader+"\n"+p1+",30000,paid,\n"+p2+",30000,paid,\n")
			return err
		})
		for range 2 {
			if err := e.round(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ps := e.sim.Payouts(e.caseOf(p2).CaseID); len(ps) != 1 || ps[0].Month != "2027-01" {
		t.Fatalf("payout of the person paid in January: %+v", ps)
	}
	if n := len(e.sim.Payouts(e.caseOf(p1).CaseID)); n != 1 {
		t.Fatalf("%d payouts for one case", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_cases WHERE case_id = ? AND payout_state = 'none' AND payout_note LIKE '%paid file%'`, e.caseOf(p3).CaseID); n != 1 {
		t.Fatal("the person never paid was not closed without a payout")
	}
	// A paid file of an item not paid by files is refused whole.
	e.drop("paid-MZ-GZFSQ-2026-12.csv", func(w io.Writer) error { _, err := io.WriteString(w, PaidHeader+"\n"+p1+",100,paid,\n"); return err })
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT COUNT(*) FROM portal_refused WHERE source = 'inbox:paid-MZ-GZFSQ-2026-12.csv' AND line = 0`); n != 1 {
		t.Fatal("a paid file of an item without paid files was not refused whole")
	}
}

func FuzzParsePaid(f *testing.F) {
	f.Add([]byte(PaidHeader + "\n" + idFor("310104", "19600101", 1) + ",30000,paid,\n"))
	f.Add([]byte(PaidHeader + "\n310104,x,failed,\"a\nb\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParsePaid(data, func(_ int64, r PaidRecord) error {
			if r.Paid && r.AmountFen <= 0 {
				t.Fatalf("a payment made without an amount: %+v", r)
			}
			if !r.Paid && r.Reason == "" {
				t.Fatalf("a failed payment without a reason: %+v", r)
			}
			return nil
		})
	})
}
