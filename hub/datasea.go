package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
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

// DemoDataseaFileRecords is the number of records the demo's simulated
// data sea drops as batch files on its SFTP drop (fewer when a person is
// already named by the API's records), beside one malformed line.
const DemoDataseaFileRecords = 12

// wireDatasea adds to h the data sea family: the allowance rules (and the
// disbursement intake's screening through them), the endpoint the datasea
// routes pull the API through (their schedule expected in the monitor by
// due_by) and poll the SFTP drop of batch files through (route
// datasea-files), the consumer of the records topic (the routes' records
// and the front-end tables'), the monthly push of the recipients list
// (入海) and the console page under /console/datasea/. opts.Demo starts
// the simulated platform with a day of records about the demo list's
// persons, on its API and, as batch files with a malformed line, on its
// SFTP drop; the routes take them at once, and the demo's cycle waits for
// them before it cuts its list.
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
		api := demoRecords(h.Clock().Now())
		sim.Add(api...)
		cfg.URL = sim.URL()
		if err := sim.StartDrop(filepath.Join(h.Config().DataDir, "demo", "datasea-drop")); err != nil {
			return fmt.Errorf("datasea simulator: %w", err)
		}
		day, files, bad := demoFiles(h.Clock().Now(), api)
		if err := sim.DropDay(day, files, bad...); err != nil {
			return fmt.Errorf("datasea simulator: %w", err)
		}
		sc := sim.DropConfig()
		cfg.SFTP = &sc
		h.parts.dataseaSim = sim
	}

	// The API's feeds are pulled, and the SFTP drop's batch files polled,
	// by the datasea routes of configs/routes (connectors/datasea/route.go,
	// files.go) through this endpoint, onto the records topic the consumer
	// below applies; the demo's simulator reaches them the same way a
	// configured URL and drop do. Without datasea.url the API routes are
	// not started, without datasea.sftp the files route (partnerRouteOff,
	// logged once).
	ep := &datasea.Endpoint{Expect: h.mon, Immediate: opts.Demo}
	if h.parts.leases != nil {
		ep.Leases = h.parts.leases // one replica at a time pulls a feed or polls the drop
	}
	if cfg.SFTP != nil {
		ep.Drop = &datasea.Drop{SFTP: *cfg.SFTP, Every: cfg.SFTPEvery}
	} else {
		log.Info("datasea: datasea.sftp is unset: the files route (configs/routes/datasea-files.yaml) is not started")
	}
	if cfg.URL != "" {
		puller, err := datasea.NewPuller(cfg, deps)
		if err != nil {
			return err
		}
		ep.Puller = puller
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
		log.Info("datasea: datasea.url is unset: the API pull routes (configs/routes/datasea-death.yaml, datasea-migration.yaml) are not started and nothing is pushed")
	}
	if ep.Puller != nil || ep.Drop != nil {
		h.parts.otherClients.add(datasea.Partner, ep)
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
// record of the simulated day and keeps aside the drop's malformed lines
// (the datasea routes brought them in, now or in an earlier run on the
// same data directory), so the list is cut after
// the deaths and moves are known; at most a minute: a demo whose routes
// are broken still runs its cycle, and says so.
func (h *Hub) waitDemoDatasea(ctx context.Context, log *slog.Logger) {
	ch, sim := h.parts.dataseaPulled, h.parts.dataseaSim
	if ch == nil || sim == nil {
		return
	}
	want, wantBad := sim.Len("death")+sim.Len("migration")+sim.Dropped(), sim.DroppedBad()
	late := h.Clock().After(time.Minute)
	for {
		var n, bad int
		err := h.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_records`).Scan(&n)
		if err == nil {
			err = h.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM allow_quarantine WHERE source = 'sftp'`).Scan(&bad)
		}
		if err == nil && n >= want && bad >= wantBad {
			log.Info("demo: the data sea's records are applied; the cycle starts", "records", n, "quarantined", bad)
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

// dataseaRouteOff tells why a datasea route cannot run on this hub ("" when
// it can): the files feed needs datasea.sftp (Endpoint.Drop), the API feeds
// datasea.url (Endpoint.Puller).
func dataseaRouteOff(others *partnerSet, config *yaml.Node) string {
	var c struct {
		Feed string `yaml:"feed"`
	}
	_ = config.Decode(&c)
	x, _ := others.get(datasea.Partner)
	ep, _ := x.(*datasea.Endpoint)
	if c.Feed == datasea.FeedFiles {
		if ep == nil || ep.Drop == nil {
			return DataseaFilesOffReason
		}
		return ""
	}
	if ep == nil || ep.Puller == nil {
		return DataseaOffReason
	}
	return ""
}

// DataseaFilesOffReason is why the data sea's files route does not run
// without its SFTP drop.
const DataseaFilesOffReason = "the data sea's SFTP drop is not configured (datasea.sftp is unset; docs/datasea.md): its files route (kind datasea, feed files) is not started"

// demoFiles are the demo drop's batch files: the day before yesterday's
// records about persons of the demo list the API's records do not name
// (ids prefixed F), and one malformed line (a wrong check digit) the
// files route quarantines with its line number.
func demoFiles(now time.Time, api []datasea.Record) (string, []datasea.Record, []string) {
	day := now.In(clock.Shanghai).AddDate(0, 0, -2).Format(time.DateOnly)
	seen := map[string]bool{}
	for _, r := range api {
		seen[r.IDNumber] = true
	}
	var out []datasea.Record
	for _, r := range dataseasim.Generate(DemoDataseaFileRecords, 1, day, 71) {
		if !seen[r.IDNumber] {
			seen[r.IDNumber] = true
			r.ID = "F" + r.ID
			out = append(out, r)
		}
	}
	bad := "F-BAD-1|death|310101190001011231|王某|" + day + "|310101|"
	return day, out, []string{bad}
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
