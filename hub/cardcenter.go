package hub

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter/cardcentersim"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// DemoCardApplications is the number of card applications the demo's
// simulated card center holds (persons of the demo list).
const DemoCardApplications = 40

// wireCardcenter adds the card center to the allowance rules al: the
// client the cardcenter routes (configs/routes/cardcenter-*.yaml) pull the
// 敬老卡 and 社保卡 (一卡通) applications and the card production progress
// with, the consumer applying what they put on the bus, and, with
// check_status, the card-status query the screening of each allowance list
// makes (a lost, frozen or cancelled card is not paid that month), and the
// console's on-demand card-status query of one person (both direct calls:
// a lookup answered at once, not a feed). opts.Demo starts the simulated
// card center with applications and a few cards lost or frozen. Without
// cardcenter.url the routes stay idle (each says so once) and no card
// status is asked. It is part of the data sea family's wiring (the
// allowance rules are one).
func wireCardcenter(ctx context.Context, h *Hub, opts Options, singleton singletonFunc, al *allowance.Service) error {
	_ = singleton // the pulls are routes now; the consumer runs on every replica
	cfg := cardcenter.ConfigFrom(h.Config())
	log := h.Logger().With("component", "cardcenter")
	deps := connectors.Deps{Logger: log, Metrics: h.Registerer(), Store: h.Store(), Clock: h.Clock(), Events: h.mon, DataDir: h.Config().DataDir}
	if opts.Demo {
		sim := cardcentersim.New()
		if err := sim.Start("127.0.0.1:0"); err != nil {
			return fmt.Errorf("cardcenter simulator: %w", err)
		}
		h.OnClose(func(context.Context) error { return sim.Close() })
		day := h.Clock().Now().In(clock.Shanghai).AddDate(0, 0, -1).Format(time.DateOnly)
		apps := cardcentersim.Generate(DemoCardApplications, 1, day, DemoPersons/DemoCardApplications+1)
		sim.AddApplications(apps...)
		for i, a := range apps {
			if i%4 == 0 {
				sim.AddProgress(cardcenter.Progress{ID: a.ID, Stage: "produced", At: h.Clock().Now().Format(time.RFC3339)})
			}
		}
		for i, p := range allDemoPersons(12) {
			sim.SetStatus(p, []string{cardcenter.StatusLost, cardcenter.StatusFrozen, cardcenter.StatusCancelled}[i%3])
		}
		cfg.URL = sim.URL()
	}
	if cfg.URL == "" {
		log.Info("cardcenter: not configured (cardcenter.url is not set): the cardcenter routes are not started and no card status is asked")
		return nil
	}
	if err := cardcenter.Migrate(ctx, h.Store()); err != nil {
		return err
	}
	// The bank-type dictionary of 一卡通 cards, among the mappings' code tables.
	banks, err := cardcenter.LoadBankTypes(os.DirFS(h.Config().Paths.Mappings), cfg.BankTypes)
	if err != nil {
		return err
	}
	client, err := cardcenter.NewClient(cfg)
	if err != nil {
		return err
	}
	client.ObserveBreaker(h.mon)
	if h.parts.leases != nil {
		client.SetLeases(h.parts.leases) // one replica at a time pulls a feed
	}
	client.SetExpect(h.mon) // each feed pulled at least once a day, by 09:00
	h.parts.otherClients.add(cardcenter.Partner, client)
	cons := &cardcenter.Consumer{Bus: h.bus, Apply: al, Banks: banks, Events: h.mon, Clock: h.Clock(), Logger: log}
	h.AddComponent("cardcenter.consume", ComponentFunc(cons.Run))
	q, err := cardcenter.NewStatusClient(cfg, deps)
	if err != nil {
		return err
	}
	q.ObserveBreaker(h.mon)
	al.SetCardQuery(q) // the console's on-demand query
	if cfg.CheckStatus {
		al.SetCardStatus(q)
	}
	return nil
}

// allDemoPersons returns the ID numbers of n persons spread over the demo list.
func allDemoPersons(n int) []string {
	var out []string
	for i, p := range demoPersons() {
		if i%(DemoPersons/n) == 7 && len(out) < n {
			out = append(out, p)
		}
	}
	return out
}

// settleClawbacks settles the claw-back items of every finished deduction
// batch by its reconciled results (deducted, or open again with the
// bank's reason for the next quarter), checking again whenever a batch
// changes and every hour. Settling is idempotent.
func settleClawbacks(ctx context.Context, svc *disbursement.Service, al *allowance.Service, clk clock.Clock, log *slog.Logger) error {
	outcomes := func(ctx context.Context, period string, ids []string) (map[string]allowance.DeductionOutcome, bool, error) {
		res, ok, err := svc.Outcomes(ctx, bank.Deduction, period, ids)
		if err != nil || !ok {
			return nil, ok, err
		}
		out := make(map[string]allowance.DeductionOutcome, len(res))
		for id, o := range res {
			out[id] = allowance.DeductionOutcome{Deducted: o.Paid(), Reason: o.Reason}
		}
		return out, true, nil
	}
	for {
		changed := svc.Changed()
		bs, err := svc.Batches(ctx, 24)
		if err != nil && ctx.Err() == nil {
			log.Warn("allowance: claw-backs: batches", "err", err)
		}
		for _, b := range bs {
			if b.Kind != string(bank.Deduction) || b.Status != disbursement.BatchDone {
				continue
			}
			st, err := al.SettleDeductions(ctx, b.Period, outcomes)
			if err != nil {
				log.Warn("allowance: claw-backs: settle failed; retried at the next check", "period", b.Period, "err", err)
				continue
			}
			if st != (allowance.Settled{}) {
				log.Info("allowance: claw-backs settled", "period", b.Period, "deducted", st.Deducted, "failed", st.Failed, "refund_due", st.RefundDue)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-clk.After(time.Hour):
		}
	}
}
