package allowance_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func ring(t testing.TB) *fieldcrypt.Ring {
	t.Helper()
	r, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key of the tests"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newService(t testing.TB, db *store.DB, c clock.Clock) (*allowance.Service, *audittest.Recorder) {
	t.Helper()
	aud := &audittest.Recorder{}
	s, err := allowance.New(context.Background(), allowance.Options{DB: db, Fields: ring(t), Audit: aud, Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	return s, aud
}

// otherProvince returns a valid ID number of Jiangsu for the birth and
// sequence of a Shanghai one.
func otherProvince(id string) string {
	b := []byte("320102" + id[6:17])
	return string(b) + string(synth.CheckDigit(b))
}

// listLine is one line of a payment list for p.
func listLine(p synth.Person, lastPaid string) string {
	return fmt.Sprintf("%s,%s,%s,%s,%s,%d,%s,%s,", p.ID, p.Name, p.Account, synth.Banks[p.Bank].Code, p.Division, p.AmountFen, p.Standard, lastPaid)
}

const header = "person_id,name,account,bank,division,amount_fen,standard,last_paid_month,termination_month"

func screen(t *testing.T, s *allowance.Service, period string, lines ...string) (string, string, int64, int64) {
	t.Helper()
	in := header + "\n" + strings.Join(lines, "\n") + "\n"
	var out, rep bytes.Buffer
	kept, excluded, _, err := s.Screen(context.Background(), period, strings.NewReader(in), &out, &rep)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), rep.String(), kept, excluded
}

func TestRules(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fc := clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai))
		s, aud := newService(t, db, fc)
		g := synth.New(5)
		dead, gone, stay, back := g.Next(), g.Next(), g.Next(), g.Next()
		stranger := g.Next()
		stranger.ID = otherProvince(stranger.ID)
		for range 16 { // the next person born on another day: another ID once the division is replaced
			g.Next()
		}
		newcomer := g.Next()
		newcomer.ID = otherProvince(newcomer.ID)
		recs := []datasea.Record{
			{ID: "D1", Kind: datasea.Death, IDNumber: dead.ID, Name: dead.Name, Date: "2026-10-15", District: dead.Division},
			{ID: "O1", Kind: datasea.MoveOut, IDNumber: gone.ID, Name: gone.Name, Date: "2026-11-03", District: gone.Division, Region: "320102"},
			{ID: "I1", Kind: datasea.MoveIn, IDNumber: newcomer.ID, Name: newcomer.Name, Date: "2026-11-20", District: "310115", Region: "320102"},
			{ID: "O2", Kind: datasea.MoveOut, IDNumber: back.ID, Name: back.Name, Date: "2026-09-01", District: back.Division, Region: "330106"},
		}
		bad := []datasea.Bad{{Ref: "api death page 1 item 9", RecordID: "D9", Reason: "malformed: id number fails its check digit"}}
		got, err := s.Apply(ctx, "api", recs, bad)
		if err != nil {
			t.Fatal(err)
		}
		if got != (datasea.Applied{New: 4, Quarantined: 1}) {
			t.Fatalf("first apply: %+v", got)
		}
		// Seen twice: nothing changes, nothing is quarantined twice.
		got, err = s.Apply(ctx, "api", append(recs, recs[0]), bad)
		if err != nil {
			t.Fatal(err)
		}
		if got.New != 0 || got.Seen != 5 {
			t.Fatalf("second apply: %+v", got)
		}
		ov, err := s.Overview(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ov.Deceased != 1 || ov.MovedOut != 2 || ov.PendingReviews != 1 || ov.Quarantined != 1 || ov.Records["death"] != 1 {
			t.Fatalf("overview %+v", ov)
		}
		if p, _ := s.PersonOf(ctx, dead.ID); p.Status != allowance.StatusDeceased || p.StopMonth != "2026-11" {
			t.Fatalf("dead person: %+v", p)
		}

		// December's list: the dead (already paid for November, after death)
		// and the moved out are left out; the stranger is warned about.
		out, rep, kept, excluded := screen(t, s, "2026-12",
			listLine(dead, "2026-11"), listLine(gone, "2026-11"), listLine(stay, "2026-11"), listLine(stranger, "2026-11"), listLine(newcomer, "2026-11"))
		if kept != 3 || excluded != 2 {
			t.Fatalf("kept %d excluded %d\n%s", kept, excluded, out)
		}
		for _, p := range []synth.Person{dead, gone} {
			if strings.Contains(out, p.ID) {
				t.Errorf("stopped person %s in the list", p.ID[:6])
			}
		}
		for _, p := range []synth.Person{stay, stranger, newcomer} {
			if !strings.Contains(out, p.ID) {
				t.Errorf("person %s missing from the list", p.ID[:6])
			}
		}
		if strings.Contains(rep, dead.ID) || !strings.Contains(rep, "claw_back") || !strings.Contains(rep, allowance.WarnNoMoveIn) {
			t.Errorf("report:\n%s", rep)
		}
		// Screening again gives the same list.
		again, _, _, _ := screen(t, s, "2026-12",
			listLine(dead, "2026-11"), listLine(gone, "2026-11"), listLine(stay, "2026-11"), listLine(stranger, "2026-11"), listLine(newcomer, "2026-11"))
		if again != out {
			t.Fatal("second screening differs")
		}
		ov, _ = s.Overview(ctx)
		if ov.Clawbacks != 1 || ov.ClawbackFen != dead.AmountFen || ov.Warnings[allowance.WarnNoMoveIn] != 1 {
			t.Fatalf("after screening: %+v", ov)
		}

		// The dead person is confirmed alive: December becomes a back-payment
		// in January's list, the claw-back is cancelled.
		if _, err := s.ConfirmAlive(ctx, stay.ID, "alice", "no death"); err == nil {
			t.Fatal("confirming a person without a death record succeeded")
		}
		fen, err := s.ConfirmAlive(ctx, dead.ID, "alice", "seen at the district office")
		if err != nil {
			t.Fatal(err)
		}
		if fen != dead.AmountFen {
			t.Fatalf("back-payment %d, want %d", fen, dead.AmountFen)
		}
		if p, _ := s.PersonOf(ctx, dead.ID); p.Status != allowance.StatusActive {
			t.Fatalf("restored person: %+v", p)
		}
		if len(aud.Records()) == 0 {
			t.Fatal("confirmation not audited")
		}
		out, _, _, _ = screen(t, s, "2027-01", listLine(dead, "2026-11"), listLine(stay, "2026-12"))
		want := fmt.Sprintf("%s,%s,%s,%s,%s,%d,", dead.ID, dead.Name, dead.Account, synth.Banks[dead.Bank].Code, dead.Division, 2*dead.AmountFen)
		if !strings.Contains(out, want) {
			t.Fatalf("January list lacks the back-payment:\n%s", out)
		}
		// A redo of January lists the back-payment again, once.
		redo, _, _, _ := screen(t, s, "2027-01", listLine(dead, "2026-11"), listLine(stay, "2026-12"))
		if redo != out {
			t.Fatalf("redo differs:\n%s\n%s", redo, out)
		}
		// February does not pay it again.
		feb, _, _, _ := screen(t, s, "2027-02", listLine(dead, "2027-01"))
		if strings.Contains(feb, want) {
			t.Fatal("back-payment listed twice")
		}
		ov, _ = s.Overview(ctx)
		if ov.Clawbacks != 0 || ov.Invalidated != 1 || ov.Backpays != 1 {
			t.Fatalf("after confirmation: %+v", ov)
		}
		// The same death record pulled again stays invalidated.
		if got, _ := s.Apply(ctx, "api", recs[:1], nil); got.Seen != 1 {
			t.Fatalf("re-pulled death: %+v", got)
		}
		if p, _ := s.PersonOf(ctx, dead.ID); p.Status != allowance.StatusActive {
			t.Fatalf("re-pulled death record restopped the person: %+v", p)
		}

		// Card applications: later than a 迁出 without a later 迁入.
		if warn, err := s.CheckApplication(ctx, back.ID, "2026-10-01", "cardcenter"); err != nil || !warn {
			t.Fatalf("application after move out: %v %v", warn, err)
		}
		if warn, _ := s.CheckApplication(ctx, back.ID, "2026-08-01", "cardcenter"); warn {
			t.Fatal("application before the move out warned")
		}
		if _, err := s.Apply(ctx, "api", []datasea.Record{{ID: "I2", Kind: datasea.MoveIn, IDNumber: back.ID, Name: back.Name, Date: "2026-11-01",
			District: back.Division, Region: "330106"}}, nil); err != nil {
			t.Fatal(err)
		}
		if warn, _ := s.CheckApplication(ctx, back.ID, "2026-10-01", "cardcenter"); warn {
			t.Fatal("application warned despite a later move in")
		}
		// The district approves the move in: the person is paid again.
		if err := s.Decide(ctx, "I2", true, "bob"); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.PersonOf(ctx, back.ID); p.Status != allowance.StatusActive {
			t.Fatalf("approved move in: %+v", p)
		}
		if err := s.Decide(ctx, "I2", true, "bob"); err == nil {
			t.Fatal("a decided review was decided again")
		}
		var rb bytes.Buffer
		if err := s.WriteReport(ctx, &rb); err != nil {
			t.Fatal(err)
		}
		for _, p := range []synth.Person{dead, gone, stranger, back} {
			if strings.Contains(rb.String(), p.ID) {
				t.Fatal("report shows a whole ID number")
			}
		}
	})
}
