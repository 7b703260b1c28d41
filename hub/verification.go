package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/hpf"
	"github.com/shanghai-mca/mzhub/connectors/hpf/hpfsim"
	"github.com/shanghai-mca/mzhub/connectors/hrss"
	"github.com/shanghai-mca/mzhub/connectors/hrss/hrsssim"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
	"github.com/shanghai-mca/mzhub/connectors/ministry/ministrysim"
	"github.com/shanghai-mca/mzhub/connectors/samr"
	"github.com/shanghai-mca/mzhub/connectors/samr/samrsim"
	"github.com/shanghai-mca/mzhub/connectors/villagebank"
	"github.com/shanghai-mca/mzhub/connectors/villagebank/villagebanksim"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/services/verification"
)

// VerificationLease is the lease held by the one replica working the
// verification outbox.
const VerificationLease = "verification.outbox"

// verificationPartners are the connectors the service fans out to, and the
// ministry client when it is wired (inbound requests).
type verificationPartners struct {
	list     []household.Partner
	ministry *ministry.Client
}

// wireVerification adds the household verification exchange: its partners
// (their simulators in the demo), the service and its outbox under a
// lease, the verification centre's API behind the partner guard, and the
// console pages.
func wireVerification(ctx context.Context, h *Hub, opts Options, singleton singletonFunc) error {
	cfg := h.Config()
	vc := verification.ConfigFrom(cfg)
	log := h.Logger().With("component", "verification")
	var ps verificationPartners
	var demo *verificationDemo
	var err error
	if opts.Demo {
		demo, err = startVerificationSims(h)
		if err != nil {
			return err
		}
		vc = demo.config(vc)
		ps, err = demo.partners()
	} else {
		ps, err = verificationPartnersFrom(ctx, h, vc)
	}
	if err != nil {
		return err
	}
	// The routes of configs/routes/verification*.yaml deliver the calls
	// through these clients; the service plans calls for them only.
	h.partnerClients.Add(ps.list...)
	planned := make([]verification.Partner, len(ps.list))
	for i, p := range ps.list {
		planned[i] = p
	}
	svc, err := verification.New(ctx, vc, verification.Deps{DB: h.Store(), Logger: log, Metrics: h.Registerer(), Clock: h.Clock(),
		Events: h.mon, Sealer: h.sec.Fields, Node: h.Node(), DataDir: cfg.DataDir, Bus: h.Bus()}, planned)
	if err != nil {
		return fmt.Errorf("wire: verification: %w", err)
	}
	if ps.ministry != nil {
		svc.SetInbound(ministryInbound{ps.ministry})
	}
	h.verification = svc
	h.AddComponent("verification", singleton(VerificationLease, svc.Run))
	guard := func(next http.Handler) http.Handler { return problem.Recover(log, h.sec.Partners.Middleware(next)) }
	h.Handle("/internal/verification/", guard(http.StripPrefix("/internal/verification", svc.APIHandler())))
	canAct := func(r *http.Request) bool {
		u, ok := accounts.UserFrom(r.Context())
		return ok && u.Role == accounts.RoleOperator
	}
	h.Handle("/console/verification/", h.sec.Accounts.Guard(accounts.RoleOperator, accounts.RoleAuditor)(
		http.StripPrefix("/console/verification", svc.ConsoleHandler(accounts.RequestUser, canAct,
			func(r *http.Request) string { return accounts.CSRFToken(r.Context()) }))))
	h.mon.Link("nav_verification", "verification/")
	log.Info("verification partners wired", "partners", len(ps.list), "inbound", ps.ministry != nil)
	if demo != nil {
		h.AddComponent("demo-verification-centre", ComponentFunc(func(ctx context.Context) error {
			if err := demo.drive(ctx, svc, log.With("component", "demo")); err != nil && ctx.Err() == nil {
				log.Error("demo verification stopped", "err", err)
			}
			<-ctx.Done()
			return nil
		}))
	}
	return nil
}

// Verification returns the household verification service.
func (h *Hub) Verification() *verification.Service { return h.verification }

// verificationPartnersFrom builds the partners the configuration names
// (an endpoint without URL is not wired); WS-Security passwords come from
// the key provider.
func verificationPartnersFrom(ctx context.Context, h *Hub, vc verification.Config) (verificationPartners, error) {
	var ps verificationPartners
	secret := func(name string) (string, error) {
		if name == "" {
			return "", nil
		}
		k, err := h.sec.Keys.Get(ctx, name)
		if err != nil {
			return "", fmt.Errorf("wire: verification: password key %s: %w", name, err)
		}
		return string(k), nil
	}
	if e := vc.HRSS; e.URL != "" {
		pw, err := secret(e.PasswordKey)
		if err != nil {
			return ps, err
		}
		c, err := hrss.New(hrss.Config{URL: e.URL, Username: e.Username, Password: pw, Transport: e.Transport})
		if err != nil {
			return ps, fmt.Errorf("wire: verification: %w", err)
		}
		ps.list = append(ps.list, c)
	}
	if e := vc.HPF; e.URL != "" {
		pw, err := secret(e.PasswordKey)
		if err != nil {
			return ps, err
		}
		c, err := hpf.New(hpf.Config{URL: e.URL, Username: e.Username, Password: pw, Transport: e.Transport})
		if err != nil {
			return ps, fmt.Errorf("wire: verification: %w", err)
		}
		ps.list = append(ps.list, c)
	}
	if e := vc.SAMR; e.URL != "" {
		c, err := samr.New(samr.Config{URL: e.URL, AppKey: e.Username, Transport: e.Transport})
		if err != nil {
			return ps, fmt.Errorf("wire: verification: %w", err)
		}
		ps.list = append(ps.list, c)
	}
	banksFile := vc.VillageBanks
	if banksFile == "" {
		banksFile = filepath.Join(h.Config().Paths.Partners, "villagebanks.yaml")
		if _, err := os.Stat(banksFile); errors.Is(err, os.ErrNotExist) {
			banksFile = ""
		}
	}
	if banksFile != "" {
		f, err := villagebank.LoadFile(banksFile)
		if err != nil {
			return ps, fmt.Errorf("wire: verification: %w", err)
		}
		cs, err := villagebank.Clients(f)
		if err != nil {
			return ps, fmt.Errorf("wire: verification: %w", err)
		}
		for _, c := range cs {
			ps.list = append(ps.list, c)
		}
	}
	if e := vc.Ministry; e.URL != "" {
		c, err := ministry.New(ministry.Config{URL: e.URL, NodeID: e.Username, Transport: e.Transport})
		if err != nil {
			return ps, fmt.Errorf("wire: verification: %w", err)
		}
		ps.list = append(ps.list, c)
		ps.ministry = c
	}
	return ps, nil
}

// ministryInbound adapts the ministry connector's inbound queue to the service.
type ministryInbound struct{ c *ministry.Client }

func (a ministryInbound) Pull(ctx context.Context, limit int) ([]verification.Request, error) {
	ins, err := a.c.Pull(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]verification.Request, 0, len(ins))
	for _, in := range ins {
		at, _ := time.Parse(time.RFC3339, in.ReceivedAt) // checked by the parser
		r := verification.Request{Reference: in.Ref, Household: in.Ref, Authorization: in.AuthNo, Origin: in.FromProvince, ReceivedAt: at}
		for _, p := range in.Persons {
			r.Members = append(r.Members, household.Member{Name: p.Name, IDNumber: p.ID})
		}
		out = append(out, r)
	}
	return out, nil
}

func (a ministryInbound) Ack(ctx context.Context, ref string) error { return a.c.Ack(ctx, ref) }

func (a ministryInbound) Return(ctx context.Context, ref string, facts []household.Fact, complete bool) error {
	return a.c.Return(ctx, ref, facts, complete)
}

// verificationDemo holds the simulated verification partners of the demo.
type verificationDemo struct {
	hrss     *hrsssim.Sim
	hpf      *hpfsim.Sim
	samr     *samrsim.Sim
	banks    *villagebanksim.Sim
	ministry *ministrysim.Sim
}

// DemoCrossProvinceDelay is how long the demo's other provinces take to answer.
const DemoCrossProvinceDelay = 8 * time.Second

func startVerificationSims(h *Hub) (*verificationDemo, error) {
	d := &verificationDemo{}
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			_ = c()
		}
	}
	err := func() error {
		var err error
		if d.hrss, err = hrsssim.Start(); err != nil {
			return err
		}
		closers = append(closers, d.hrss.Close)
		if d.hpf, err = hpfsim.Start(); err != nil {
			return err
		}
		closers = append(closers, d.hpf.Close)
		if d.samr, err = samrsim.Start(); err != nil {
			return err
		}
		closers = append(closers, d.samr.Close)
		if d.banks, err = villagebanksim.Start(); err != nil {
			return err
		}
		closers = append(closers, d.banks.Close)
		if d.ministry, err = ministrysim.Start(DemoCrossProvinceDelay); err != nil {
			return err
		}
		closers = append(closers, d.ministry.Close)
		return nil
	}()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("demo: verification simulators: %w", err)
	}
	h.OnClose(func(context.Context) error { closeAll(); return nil })
	// A little of what real partners do: the housing fund now and then
	// answers with a malformed record, a village bank repeats an account.
	d.hpf.Faults.SetRates(100, 0)
	d.banks.Banks["vb09"].Faults.SetRates(0, 500)
	return d, nil
}

// config tunes the service for the demo: answers within a minute, polls
// every two seconds, one answer in five sampled for review.
func (d *verificationDemo) config(vc verification.Config) verification.Config {
	vc.Deadline = time.Minute
	vc.CrossProvinceDeadline = 2 * time.Minute
	vc.PollEvery = 2 * time.Second
	vc.Tick = 200 * time.Millisecond
	vc.InboundEvery = 2 * time.Second
	vc.SampleRate = 0.2
	vc.Concurrency = 4
	vc.ReportEvery = 5 * time.Minute
	return vc
}

func (d *verificationDemo) partners() (verificationPartners, error) {
	var ps verificationPartners
	h, err := hrss.New(d.hrss.Config())
	if err != nil {
		return ps, err
	}
	f, err := hpf.New(d.hpf.Config())
	if err != nil {
		return ps, err
	}
	m, err := samr.New(d.samr.Config())
	if err != nil {
		return ps, err
	}
	ps.list = append(ps.list, h, f, m)
	vbs, err := villagebank.Clients(d.banks.File())
	if err != nil {
		return ps, err
	}
	for _, c := range vbs {
		ps.list = append(ps.list, c)
	}
	if ps.ministry, err = ministry.New(d.ministry.Config()); err != nil {
		return ps, err
	}
	ps.list = append(ps.list, ps.ministry)
	return ps, nil
}

// DemoHouseholds is how many households the demo's verification centre submits.
const DemoHouseholds = 5

// drive plays the bureau's verification centre and two other provinces:
// five households are submitted (two with a member registered elsewhere,
// asked through the ministry platform), Jiangsu sends two requests about
// Shanghai residents, and the results are logged as they become final.
func (d *verificationDemo) drive(ctx context.Context, svc *verification.Service, log *slog.Logger) error {
	var ids []string
	for i := range DemoHouseholds {
		id, _, err := svc.Submit(ctx, verification.Request{Reference: fmt.Sprintf("DEMO-%s-%d", time.Now().Format("20060102"), i+1),
			Household: fmt.Sprintf("HH%06d", 1000+i), Division: "310104", Authorization: fmt.Sprintf("EAUTH-DEMO-%d", i+1),
			Members: householdsim.Household(1000+i, i%2 == 0 && i < 4)})
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	var inbound [][]ministry.Person
	for i := range 2 {
		var ps []ministry.Person
		for _, m := range householdsim.Household(2000+i, false) {
			ps = append(ps, ministry.Person{ID: m.IDNumber, Name: m.Name})
		}
		inbound = append(inbound, ps)
	}
	d.ministry.Inject("32", inbound)
	log.Info("demo: the verification centre submitted households; Jiangsu asked about two Shanghai households", "households", len(ids))
	reported := map[string]bool{}
	for len(reported) < len(ids) {
		changed := svc.Changed()
		for _, id := range ids {
			if reported[id] {
				continue
			}
			r, err := svc.Result(ctx, id)
			if err != nil {
				return err
			}
			if r.Status == "final" {
				reported[id] = true
				log.Info("demo: household verified", "request", id, "complete", r.Complete, "partners", len(r.Partners),
					"monthly_income_fen", r.MonthlyIncomeFen, "assets_fen", r.AssetsFen)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
	return nil
}
