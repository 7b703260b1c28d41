package cardcenter_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter/cardcentersim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

type mem struct {
	mu    sync.Mutex
	apps  map[string]int
	banks map[string]string
	bad   []cardcenter.Bad
	steps map[string]string
}

func (m *mem) ApplyApplications(_ context.Context, apps []cardcenter.Application, bad []cardcenter.Bad) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range apps {
		if m.apps[a.ID] == 0 {
			n++
		}
		m.apps[a.ID]++
		if m.banks != nil {
			m.banks[a.ID] = a.Bank
		}
	}
	m.bad = append(m.bad, bad...)
	return n, nil
}

func (m *mem) ApplyProgress(_ context.Context, steps []cardcenter.Progress) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range steps {
		m.steps[s.ID] = s.Stage
	}
	return len(steps), nil
}

// bankOf is the shipped dictionary's bank of each code.
var bankOf = map[string]string{"104": "boc", "301": "bocom", "303": "ceb", "308": "cmb", "310": "spdb", "105": "ccb"}

func bankTypes(t testing.TB) *cardcenter.BankTypes {
	t.Helper()
	bt, err := cardcenter.LoadBankTypes(os.DirFS("../../configs/mappings"), cardcenter.DefaultBankTypes)
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

// TestApplicationCheck checks the intake's checks of an application,
// the 一卡通 bank-type dictionary among them.
func TestApplicationCheck(t *testing.T) {
	bt := bankTypes(t)
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, clock.Shanghai)
	good := cardcenter.Application{ID: "A1", IDNumber: synth.New(1).Next().ID, CardType: cardcenter.SocialSecurityCard, Channel: "sscard",
		Yikatong: true, AppliedOn: "2026-12-01", District: "310101", BankCode: "301", Account: "6222620000111122223"}
	for _, tc := range []struct {
		name   string
		change func(a *cardcenter.Application)
		reason string // "" accepted
		bank   string
	}{
		{"一卡通 at a listed bank", func(*cardcenter.Application) {}, "", "bocom"},
		{"every shipped code", func(a *cardcenter.Application) { a.BankCode = "105" }, "", "ccb"},
		{"senior card without a bank", func(a *cardcenter.Application) {
			a.CardType, a.Yikatong, a.BankCode, a.Account = cardcenter.SeniorCard, false, "", ""
		}, "", ""},
		{"unknown bank code", func(a *cardcenter.Application) { a.BankCode = "102" }, `bank_code "102" is not in the card center's bank-type dictionary (cardcenter-bank-types)`, ""},
		{"a connector code is no card center code", func(a *cardcenter.Application) { a.BankCode = "boc" }, `bank_code "boc" is not in`, ""},
		{"unknown code on a card without 一卡通", func(a *cardcenter.Application) { a.Yikatong = false; a.BankCode = "999" }, `bank_code "999"`, ""},
		{"一卡通 without a bank", func(a *cardcenter.Application) { a.BankCode = "" }, "一卡通 without the card's bank_code", ""},
		{"一卡通 without an account", func(a *cardcenter.Application) { a.Account = "" }, "一卡通 without the card's account", ""},
		{"an account not of digits", func(a *cardcenter.Application) { a.Account = "62226200001111X2223" }, "account ***************2223 is not 12 to 32 digits", ""},
		{"一卡通 on a senior card", func(a *cardcenter.Application) { a.CardType = cardcenter.SeniorCard }, "一卡通 on a card that is not a social-security card", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := good
			tc.change(&a)
			err := a.Check(now, bt)
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason != "" && (err == nil || !strings.Contains(err.Error(), tc.reason) || !errors.Is(err, cardcenter.ErrMalformed)):
				t.Fatalf("got %v, want a reason with %q", err, tc.reason)
			case tc.reason == "" && a.Bank != tc.bank:
				t.Fatalf("bank %q, want %q", a.Bank, tc.bank)
			}
			if err != nil && strings.Contains(err.Error(), a.Account) && a.Account != "" {
				t.Fatal("the reason shows the whole account")
			}
		})
	}
	// A dictionary whose values are not banks is refused.
	bad := fstest.MapFS{"t.yaml": {Data: []byte("kind: codetable\nname: t\ncodes:\n  - {code: \"104\", text: 中国银行}\n")}}
	if _, err := cardcenter.LoadBankTypes(bad, "t.yaml"); err == nil {
		t.Fatal("a dictionary without banks loaded")
	}
}

var day = time.Date(2026, 12, 2, 9, 0, 0, 0, clock.Shanghai)

func start(t *testing.T) (*cardcentersim.Sim, cardcenter.Config) {
	t.Helper()
	sim := cardcentersim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	cfg := cardcenter.DefaultConfig()
	cfg.URL, cfg.PageSize = sim.URL(), 50
	cfg.Client = httpx.ClientConfig{Timeout: 5 * time.Second, BreakerFailures: 2, BreakerOpen: time.Hour}
	return sim, cfg
}

func TestPullApplications(t *testing.T) {
	ctx := context.Background()
	sim, cfg := start(t)
	apps := cardcentersim.Generate(180, 4, "2026-12-01", 2)
	sim.AddApplications(apps...)
	bad := apps[0]
	bad.ID, bad.IDNumber = "ABAD", bad.IDNumber[:17]+"Y"
	unknownBank := apps[1]
	unknownBank.ID, unknownBank.CardType, unknownBank.Channel, unknownBank.Yikatong = "ABANK", cardcenter.SocialSecurityCard, "sscard", true
	unknownBank.BankCode, unknownBank.Account = "999", "6222000011112222333"
	sim.AddApplications(bad, unknownBank)
	sim.AddProgress(cardcenter.Progress{ID: apps[0].ID, Stage: "produced", At: "2026-12-01T10:00:00+08:00"}, cardcenter.Progress{ID: "x", Stage: "melted"})
	sim.Faults.Duplicates.Store(true)
	db := storetest.Open(t)
	if err := cardcenter.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	m := &mem{apps: map[string]int{}, steps: map[string]string{}, banks: map[string]string{}}
	ev := &monitortest.Recorder{}
	p, err := cardcenter.NewPuller(cfg, connectors.Deps{Store: db, Events: ev, Clock: clock.NewFake(day)}, bankTypes(t), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Pull(ctx); err != nil {
		t.Fatal(err)
	}
	if len(m.apps) != len(apps) || len(m.bad) != 2 || m.bad[0].RecordID != "ABAD" || m.steps[apps[0].ID] != "produced" {
		t.Fatalf("%d applications, bad %+v, steps %v", len(m.apps), m.bad, m.steps)
	}
	if m.bad[1].RecordID != "ABANK" || !strings.Contains(m.bad[1].Reason, `bank_code "999" is not in the card center's bank-type dictionary (cardcenter-bank-types)`) ||
		strings.Contains(m.bad[1].Reason, unknownBank.Account) {
		t.Fatalf("unknown bank code: %+v", m.bad[1])
	}
	var yk, ss int
	for _, a := range apps {
		if a.CardType == cardcenter.SocialSecurityCard {
			ss++
			if a.Yikatong {
				yk++
			}
			if got := m.banks[a.ID]; got == "" || got != bankOf[a.BankCode] {
				t.Fatalf("%s: bank code %s resolved to %q", a.ID, a.BankCode, got)
			}
		}
	}
	if ss == 0 || yk == 0 {
		t.Fatal("the generator made no 社保卡 / 一卡通 applications")
	}
	// Resumed from the cursors: nothing again.
	before := len(m.apps)
	if n, _, err := p.Pull(ctx); err != nil || n != 0 || len(m.apps) != before {
		t.Fatalf("second pull: %d %v", n, err)
	}
	// Down: the breaker opens; the failure is an error event.
	sim.Faults.Down.Store(true)
	for range 3 {
		_, _, err = p.Pull(ctx)
	}
	if !errors.Is(err, httpx.ErrCircuitOpen) {
		t.Fatalf("down: %v", err)
	}
	if ev.Count(func(e monitor.Event) bool {
		return e.Type == monitor.Failed && e.Status == monitor.Error && e.Partner == "cardcenter"
	}) == 0 {
		t.Fatal("no error event")
	}
}

func TestStatus(t *testing.T) {
	ctx := context.Background()
	sim, cfg := start(t)
	cfg.StatusBatch, cfg.StatusParallel = 100, 4
	g := synth.New(2)
	var ids []string
	for range 1050 {
		ids = append(ids, g.Next().ID)
	}
	sim.SetStatus(ids[3], cardcenter.StatusLost)
	sim.SetStatus(ids[500], cardcenter.StatusFrozen)
	sim.SetStatus(ids[1049], cardcenter.StatusCancelled)
	ev := &monitortest.Recorder{}
	q, err := cardcenter.NewStatusClient(cfg, connectors.Deps{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Query(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) || got[ids[3]] != "lost" || got[ids[500]] != "frozen" || got[ids[1049]] != "cancelled" || got[ids[0]] != "normal" {
		t.Fatalf("%d statuses: %v %v %v", len(got), got[ids[3]], got[ids[500]], got[ids[1049]])
	}
	// A batch larger than the card center takes, or a wrong answer: no statuses at all.
	sim.Faults.MaxBatch.Store(50)
	if _, err := q.Query(ctx, ids); err == nil {
		t.Fatal("refused batches gave statuses")
	}
	sim.Faults.MaxBatch.Store(0)
	// Every answer wrong (requests of the query above the server still
	// answers after the client gave up would use up a smaller count).
	sim.Faults.Wrong.Store(1 << 20)
	// A fresh client: the refusals above (and the batches they cancelled)
	// may have opened the first one's breaker.
	q, err = cardcenter.NewStatusClient(cfg, connectors.Deps{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Query(ctx, ids); !errors.Is(err, cardcenter.ErrBadAnswer) {
		t.Fatalf("wrong answer: %v", err)
	}
	if n := ev.Count(func(e monitor.Event) bool { return e.Flow == "card-status" && e.Type == monitor.Failed }); n != 2 {
		t.Fatalf("%d failed events", n)
	}
}
