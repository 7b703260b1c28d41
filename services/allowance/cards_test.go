package allowance_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

type statuses struct {
	m    map[string]string
	err  error
	asks int
}

func (s *statuses) Query(_ context.Context, ids []string) (map[string]string, error) {
	s.asks++
	if s.err != nil {
		return nil, s.err
	}
	out := map[string]string{}
	for _, id := range ids {
		out[id] = "normal"
		if st, ok := s.m[id]; ok {
			out[id] = st
		}
	}
	return out, nil
}

func TestCards(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
		g := synth.New(6)
		mover, lost, plain := g.Next(), g.Next(), g.Next()
		if _, err := s.Apply(ctx, "api", []datasea.Record{{ID: "O1", Kind: datasea.MoveOut, IDNumber: mover.ID, Name: mover.Name, Date: "2026-10-01",
			District: mover.Division, Region: "320102"}}, nil); err != nil {
			t.Fatal(err)
		}
		apps := []cardcenter.Application{
			{ID: "A1", IDNumber: mover.ID, Name: mover.Name, CardType: cardcenter.SeniorCard, Channel: "window", AppliedOn: "2026-11-05", District: mover.Division},
			{ID: "A2", IDNumber: plain.ID, Name: plain.Name, CardType: cardcenter.SocialSecurityCard, Channel: "sscard", Yikatong: true, AppliedOn: "2026-11-05", District: plain.Division, BankCode: "boc"},
		}
		if n, err := s.ApplyApplications(ctx, apps, []cardcenter.Bad{{Ref: "api applications page 1 item 3", RecordID: "A3", Reason: "malformed"}}); err != nil || n != 2 {
			t.Fatalf("applications: %d %v", n, err)
		}
		if n, _ := s.ApplyApplications(ctx, apps, nil); n != 0 {
			t.Fatalf("applications applied twice: %d", n)
		}
		ov, _ := s.Overview(ctx)
		if ov.Warnings[allowance.WarnAppliedAfterMoveOut] != 1 || ov.Quarantined != 1 {
			t.Fatalf("overview %+v", ov)
		}
		// The other order: the application first, the 迁出 record after.
		late := g.Next()
		if _, err := s.ApplyApplications(ctx, []cardcenter.Application{{ID: "A4", IDNumber: late.ID, Name: late.Name, CardType: cardcenter.SeniorCard,
			Channel: "online", AppliedOn: "2026-11-20", District: late.Division}}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(ctx, "api", []datasea.Record{{ID: "O4", Kind: datasea.MoveOut, IDNumber: late.ID, Name: late.Name, Date: "2026-11-01",
			District: late.Division, Region: "320102"}}, nil); err != nil {
			t.Fatal(err)
		}
		if ov, _ := s.Overview(ctx); ov.Warnings[allowance.WarnAppliedAfterMoveOut] != 2 {
			t.Fatalf("application before its 迁出 record: %+v", ov.Warnings)
		}
		// Production moves forward only.
		if n, _ := s.ApplyProgress(ctx, []cardcenter.Progress{{ID: "A2", Stage: "issued", At: "t2"}, {ID: "A2", Stage: "accepted", At: "t1"}, {ID: "none", Stage: "issued"}}); n != 1 {
			t.Fatalf("progress: %d", n)
		}
		as, _ := s.Applications(ctx, 10)
		if len(as) != 3 {
			t.Fatalf("applications %+v", as)
		}
		for _, a := range as {
			if a.AppID == "A2" && (a.Stage != "issued" || !a.Yikatong || a.Channel != "sscard") {
				t.Fatalf("A2 %+v", a)
			}
		}

		// Card status before payment: a lost card is not paid this month.
		st := &statuses{m: map[string]string{lost.ID: "lost"}}
		s.SetCardStatus(st)
		out, rep, kept, excluded := screen(t, s, "2026-12", listLine(lost, "2026-11"), listLine(plain, "2026-11"))
		if kept != 1 || excluded != 1 || strings.Contains(out, lost.ID) || !strings.Contains(rep, "card lost") || st.asks != 1 {
			t.Fatalf("kept %d excluded %d asks %d\n%s\n%s", kept, excluded, st.asks, out, rep)
		}
		// The card center down: the list is not cut on a guess.
		st.err = errors.New("card center down")
		in := header + "\n" + listLine(plain, "2026-11") + "\n"
		var o, r strings.Builder
		if _, _, _, err := s.Screen(ctx, "2026-12", strings.NewReader(in), &o, &r); err == nil {
			t.Fatal("screened without card statuses")
		}
	})
}

// TestYikatongRouting: a 一卡通 holder's list line is paid to the card's
// bank and account (the latest 一卡通 application's, whatever order the
// applications come in); others keep their line; the report shows it
// masked; a redo writes the same list.
func TestYikatongRouting(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _ := newService(t, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
		g := synth.New(9)
		holder, senior, plain := g.Next(), g.Next(), g.Next()
		other := (holder.Bank + 1) % len(synth.Banks)
		card := "6222620000111122223"
		older := "6217000099998888777"
		apps := []cardcenter.Application{
			// The later application first: the older one, pulled after it, must not win.
			{ID: "Y2", IDNumber: holder.ID, CardType: cardcenter.SocialSecurityCard, Channel: "sscard", Yikatong: true, AppliedOn: "2026-11-20",
				District: holder.Division, BankCode: synth.Banks[other].CNAPS, Account: card, Bank: synth.Banks[other].Code},
			{ID: "Y1", IDNumber: holder.ID, CardType: cardcenter.SocialSecurityCard, Channel: "sscard", Yikatong: true, AppliedOn: "2026-10-02",
				District: holder.Division, BankCode: "105", Account: older, Bank: "ccb"},
			// A 社保卡 without 一卡通, and a 敬老卡: paid as listed.
			{ID: "S1", IDNumber: plain.ID, CardType: cardcenter.SocialSecurityCard, Channel: "sscard", AppliedOn: "2026-11-20",
				District: plain.Division, BankCode: "104", Account: "6216610000222233334", Bank: "boc"},
			{ID: "J1", IDNumber: senior.ID, CardType: cardcenter.SeniorCard, Channel: "window", AppliedOn: "2026-11-20", District: senior.Division},
		}
		if _, err := s.ApplyApplications(ctx, apps[:1], nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApplyApplications(ctx, apps[1:], nil); err != nil {
			t.Fatal(err)
		}
		lines := []string{listLine(holder, "2026-11"), listLine(senior, "2026-11"), listLine(plain, "2026-11")}
		out, rep, kept, _ := screen(t, s, "2026-12", lines...)
		want := strings.Join([]string{header,
			fmt.Sprintf("%s,%s,%s,%s,%s,%d,%s,2026-11,", holder.ID, holder.Name, card, synth.Banks[other].Code, holder.Division, holder.AmountFen, holder.Standard),
			lines[1], lines[2]}, "\n") + "\n"
		if out != want || kept != 3 {
			t.Fatalf("screened list:\n%s\nwant:\n%s", out, want)
		}
		if !strings.Contains(rep, "yikatong,paid to the card: "+synth.Banks[other].Code+" ***************2223") || strings.Contains(rep, card) ||
			strings.Contains(rep, holder.Account) || strings.Count(rep, "yikatong") != 1 {
			t.Fatalf("report:\n%s", rep)
		}
		// Redone: the same list.
		if again, _, _, _ := screen(t, s, "2026-12", lines...); again != out {
			t.Fatalf("redo differs:\n%s", again)
		}
		// The console lists the applications with the masked card account.
		as, err := s.Applications(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.AppID == "Y2" && (a.Bank != synth.Banks[other].Code || a.AccountMasked != "***************2223") {
				t.Fatalf("Y2 %+v", a)
			}
		}
	})
}
