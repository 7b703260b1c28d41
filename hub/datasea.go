package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/store"
)

// DemoDataseaRecords is the number of death and move records the demo's
// simulated data sea is given about persons of the demo list (a person
// drawn twice is kept once, so it holds at most this many).
const DemoDataseaRecords = 60

// wireDatasea adds to h the data sea family: the allowance rules (and the
// disbursement intake's screening through them), the endpoint the datasea
// routes pull the API through (their schedule expected in the monitor by
// due_by), the SFTP batch files, the consumer of the records topic (the
// routes' records and the front-end tables'), the monthly push of the
// recipients list (入海) and the console page under /console/datasea/.
// opts.Demo starts the simulated platform with a day of records about the
// demo list's persons; the routes pull them at once, and the demo's cycle
// waits for them before it cuts its list.
func wireDatasea(ctx context.Context, h *Hub, opts Options, singleton singletonFunc) error {
	cfg := datasea.ConfigFrom(h.Config())
	log := h.Logger().With("component", "datasea")
	deps := connectors.Deps{Logger: log, Metrics: h.Registerer(), Store: h.Store(), Clock: h.Clock(), Events: h.mon, DataDir: h.Config().DataDir}
	if err := datasea.Migrate(ctx, h.Store()); err != nil {
		return err
	}
	al, err := allowance.New(ctx, allowance.Options{DB: h.Store(), Fields: h.sec.Fields, Audit: h.sec.Audit, Logger: log,
		Clock: h.Clock(), Metrics: h.Registerer()})
	if err != nil {
		return err
	}
	if h.disbursement != nil {
		h.disbursement.SetScreener(al)
		// Claw-backs join the quarterly deduction and are settled by its returns.
		h.disbursement.SetDeductionScreener(al.Deductions())
		svc := h.disbursement
		h.AddComponent("allowance.clawbacks", singleton("allowance.clawbacks", func(ctx context.Context) error {
			return settleClawbacks(ctx, svc, al, h.Clock(), log)
		}))
	}
	var sim *dataseasim.Sim
	if opts.Demo {
		sim = dataseasim.New()
		if err := sim.Start("127.0.0.1:0"); err != nil {
			return fmt.Errorf("datasea simulator: %w", err)
		}
		h.OnClose(func(context.Context) error { return sim.Close() })
		sim.Add(demoRecords(h.Clock().Now())...)
		cfg.URL = sim.URL()
		h.parts.dataseaSim = sim
	}

	// The API's feeds are pulled by the datasea routes of configs/routes
	// (connectors/datasea/route.go) through this endpoint, on the records
	// topic the consumer below applies; the demo's simulator reaches them
	// the same way a configured URL does. Without datasea.url there is no
	// endpoint and those routes are not started (logged once).
	if cfg.URL != "" {
		puller, err := datasea.NewPuller(cfg, deps)
		if err != nil {
			return err
		}
		ep := &datasea.Endpoint{Puller: puller, Expect: h.mon, Immediate: opts.Demo}
		if h.parts.leases != nil {
			ep.Leases = h.parts.leases // one replica at a time pulls a feed
		}
		h.parts.otherClients.add(datasea.Partner, ep)
		if cfg.Push && h.disbursement != nil {
			pusher, err := datasea.NewPusher(cfg, deps, h.sec.FileSigner)
			if err != nil {
				return err
			}
			svc, dir := h.disbursement, DisbursementConfig(h.Config()).Dir
			h.AddComponent("datasea.push", singleton("datasea.push", func(ctx context.Context) error {
				return pushRecipients(ctx, h.Store(), svc, al, pusher, dir, h.Clock(), log)
			}))
		}
	} else {
		log.Info("datasea: datasea.url is unset: the API pull routes (configs/routes/datasea-*.yaml) are not started and nothing is pushed")
	}
	if cfg.SFTP != nil {
		if err := sftp.Migrate(ctx, h.Store()); err != nil {
			return err
		}
		files, err := datasea.NewFiles(cfg, deps, al)
		if err != nil {
			return err
		}
		h.AddComponent("datasea.files", singleton("datasea.files", files.Run))
	}
	if err := wireCardcenter(ctx, h, opts, singleton, al); err != nil {
		return fmt.Errorf("cardcenter: %w", err)
	}
	cons := &datasea.Consumer{Bus: h.bus, Apply: al, Events: h.mon, Clock: h.Clock(), Logger: log}
	if sim != nil {
		// The demo's cycle cuts its list once the routes brought the
		// simulated day in (startDemoFlows: waitDemoDatasea).
		cons.Applied = demoPulled(h)
	}
	h.AddComponent("datasea.consume", ComponentFunc(cons.Run))

	canAct := func(r *http.Request) bool {
		u, ok := accounts.UserFrom(r.Context())
		return ok && u.Role == accounts.RoleOperator
	}
	page := al.OpsHandler(allowance.OpsOptions{User: accounts.RequestUser, CanAct: canAct,
		CSRF:   func(r *http.Request) string { return accounts.CSRFToken(r.Context()) },
		Pushes: func(ctx context.Context) ([]allowance.Push, error) { return recentPushes(ctx, h) },
		Framed: func(r *http.Request) bool { _, ok := console.FrameFrom(r.Context()); return ok },
	})
	h.mon.Mount("nav_datasea", "datasea/", page) // inside the console's layout, behind its guard
	return nil
}

// DataseaSim returns the demo's simulated data sea (nil outside the demo).
func (h *Hub) DataseaSim() *dataseasim.Sim { return h.parts.dataseaSim }

// demoPulled returns the consumer's hook that tells h's dataseaPulled
// whenever records were applied (waitDemoDatasea counts them then).
func demoPulled(h *Hub) func(datasea.Applied) {
	ch := make(chan struct{}, 1)
	h.parts.dataseaPulled = ch
	return func(datasea.Applied) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// waitDemoDatasea waits, in the demo, until the allowance holds every
// record of the simulated day (the datasea routes brought them in, now or
// in an earlier run on the same data directory), so the list is cut after
// the deaths and moves are known; at most a minute: a demo whose routes
// are broken still runs its cycle, and says so.
func (h *Hub) waitDemoDatasea(ctx context.Context, log *slog.Logger) {
	ch, sim := h.parts.dataseaPulled, h.parts.dataseaSim
	if ch == nil || sim == nil {
		return
	}
	want := sim.Len("death") + sim.Len("migration")
	late := h.Clock().After(time.Minute)
	for {
		var n int
		if err := h.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_records`).Scan(&n); err == nil && n >= want {
			log.Info("demo: the data sea's records are applied; the cycle starts", "records", n)
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-late:
			log.Warn("demo: the data sea's records did not all arrive within a minute (routes datasea-*); the cycle starts without them", "records", n, "want", want)
			return
		}
	}
}

// pushRecipients pushes the list of every finished allowance batch not yet
// pushed (入海), checking again whenever a batch changes and every hour.
func pushRecipients(ctx context.Context, db *store.DB, svc *disbursement.Service, al *allowance.Service, p *datasea.Pusher, dir string, clk clock.Clock, log *slog.Logger) error {
	for {
		changed := svc.Changed()
		bs, err := svc.Batches(ctx, 12)
		if err != nil && ctx.Err() == nil {
			log.Warn("datasea: push: batches", "err", err)
		}
		for _, b := range bs {
			if b.Kind != string(bank.Disbursement) || b.Status != disbursement.BatchDone {
				continue
			}
			if st, ok, err := datasea.Pushed(ctx, db, b.Period); err != nil || (ok && st.State == "received") {
				continue
			}
			if err := pushOne(ctx, al, p, svc, b.Period); err != nil {
				log.Warn("datasea: push failed; retried at the next check", "period", b.Period, "err", err)
				continue
			}
			log.Info("datasea: recipients pushed", "period", b.Period)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-clk.After(time.Hour):
		}
	}
}

func pushOne(ctx context.Context, al *allowance.Service, p *datasea.Pusher, svc *disbursement.Service, period string) error {
	// The closed batch keeps its list sealed: the service opens it.
	f, err := svc.OpenList(ctx, bank.Disbursement, period)
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := al.Recipients(f)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return errors.New("empty list")
	}
	_, err = p.Push(ctx, period, recs)
	return err
}

// recentPushes lists the pushes of the last twelve months for the console.
func recentPushes(ctx context.Context, h *Hub) ([]allowance.Push, error) {
	rows, err := h.Store().QueryContext(ctx, `SELECT period, state, receipt, detail, records, total_fen FROM datasea_pushes ORDER BY period DESC LIMIT 12`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []allowance.Push
	for rows.Next() {
		var p allowance.Push
		if err := rows.Scan(&p.Period, &p.State, &p.Receipt, &p.Detail, &p.Records, &p.TotalFen); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// demoPersons returns the ID numbers of the demo list's persons.
func demoPersons() []string {
	ps := dataseasim.Persons(1, DemoPersons)
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// demoRecords are the demo platform's records about persons of the demo
// list: half of mid last month (their payment stops this month), a sixth
// of the month before (already paid last month after death: claw-backs),
// the rest of yesterday (stopping next month); each person once.
func demoRecords(now time.Time) []datasea.Record {
	now = now.In(clock.Shanghai)
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, clock.Shanghai)
	days := []struct {
		day  string
		n    int
		step int
	}{
		{first.AddDate(0, -1, 14).Format(time.DateOnly), DemoDataseaRecords / 2, 97},
		{first.AddDate(0, -2, 14).Format(time.DateOnly), DemoDataseaRecords / 6, 89},
		{now.AddDate(0, 0, -1).Format(time.DateOnly), DemoDataseaRecords - DemoDataseaRecords/2 - DemoDataseaRecords/6, 83},
	}
	seen := map[string]bool{}
	var out []datasea.Record
	for _, d := range days {
		for _, r := range dataseasim.Generate(d.n, 1, d.day, d.step) {
			if !seen[r.IDNumber] {
				seen[r.IDNumber] = true
				out = append(out, r)
			}
		}
	}
	return out
}
