package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/hrss"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/services/portal"
)

// PortalLease is the lease held by the one runner of the portal exchanges.
const PortalLease = "portal.exchange"

// PortalKeyName is the key provider's name of the signing secret the
// one-stop portal issued to the bureau (file keys/portal/signing, or
// MZHUB_KEY_PORTAL__SIGNING in hex).
const PortalKeyName = "portal/signing"

// portalDemoKeyID is the key id of the demo's simulated portal.
const portalDemoKeyID = "mzhub-demo"

// portalClient holds the client of the one-stop portal the hub built from
// its portal configuration (nil until wirePortal, and when the portal is
// off).
type portalClient struct {
	mu sync.RWMutex
	c  *joblib.Client
}

func (p *portalClient) set(c *joblib.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c = c
}

// hubPartners is the routes' connectors.Deps.Partners: the verification
// partners' clients (household.Clients) and the portal's, under
// joblib.PartnerPortal (joblib.Clients), so a route's `partner: portal`
// shares the service's address, signing key, rate limit and breaker; and
// the other families' clients by partner id (others: the data sea's).
type hubPartners struct {
	*household.Directory
	portal *portalClient
	others *partnerSet
}

// partnerSet holds the clients families add as they are wired (before the
// routes start), by partner id.
type partnerSet struct {
	mu sync.RWMutex
	m  map[string]any
}

func (s *partnerSet) add(id string, c any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]any{}
	}
	s.m[id] = c
}

func (s *partnerSet) get(id string) (any, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.m[id]
	return c, ok
}

// PartnerClient returns the client of partner id.
func (p hubPartners) PartnerClient(id string) (any, error) {
	if c, ok := p.others.get(id); ok {
		return c, nil
	}
	if id != joblib.PartnerPortal {
		return p.Directory.PartnerClient(id)
	}
	p.portal.mu.RLock()
	defer p.portal.mu.RUnlock()
	if p.portal.c == nil {
		return nil, fmt.Errorf("%w: the portal is not enabled (portal.enabled, docs/portal.md)", household.ErrNotConfigured)
	}
	return p.portal.c, nil
}

func (p *portalClient) enabled() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.c != nil
}

// partnerRouteOff is the route engine's Skip: a route whose endpoint is
// one of the hub's own partner clients that this hub does not have — the
// portal with its section off (joblib, partner: portal), the data sea
// without datasea.url (its API feeds) or datasea.sftp (its files feed), the card center without cardcenter.url — is not
// started: it would only fail or idle against nothing. The log (one line,
// info) and the console's routes say why.
func partnerRouteOff(p *portalClient, others *partnerSet, verif *household.Directory) func(*routes.Route) string {
	return func(r *routes.Route) string {
		for _, ep := range append([]routes.Endpoint{r.From}, r.To...) {
			switch ep.Kind {
			case hrss.PartnerID:
				if c, err := verif.PartnerClient(hrss.PartnerID); err == nil {
					if _, ok := c.(hrss.Planner); ok {
						return HRSSFrontEndReason
					}
				}
			case joblib.Kind:
				if p.enabled() {
					continue
				}
				var c struct {
					Partner string `yaml:"partner"`
				}
				if err := ep.Config.Decode(&c); err == nil && c.Partner == joblib.PartnerPortal {
					return PortalOffReason
				}
			case datasea.ConnectorKind:
				if why := dataseaRouteOff(others, &ep.Config); why != "" {
					return why
				}
			case cardcenter.Kind:
				if _, ok := others.get(cardcenter.Partner); !ok {
					return CardcenterOffReason
				}
			}
		}
		return ""
	}
}

// HRSSFrontEndReason is why the SOAP route to social security does not run
// when it is reached through the front-end tables.
const HRSSFrontEndReason = "social security is reached through the front-end tables (verification.hrss_via: frontend; docs/verification.md): its SOAP route (kind hrss) is not started"

// DataseaOffReason is why the data sea's routes do not run without its API.
const DataseaOffReason = "the data sea's API is not configured (datasea.url is unset; docs/datasea.md): its routes (kind datasea) are not started"

// CardcenterOffReason is why the card center's routes do not run without it.
const CardcenterOffReason = "the card center is not configured (cardcenter.url is unset; docs/datasea.md): its routes (kind cardcenter) are not started"

// PortalOffReason is why the portal routes do not run with the portal off.
const PortalOffReason = "the one-stop portal is not enabled (portal.enabled: false; docs/portal.md): its routes (partner: portal) are not started"

// portalFamily is the wired portal exchange.
type portalFamily struct {
	svc *portal.Service
	sim *joblibsim.Sim
}

// Portal returns the one-stop portal service (nil when the portal is not
// enabled).
func (h *Hub) Portal() *portal.Service {
	if h.portal == nil {
		return nil
	}
	return h.portal.svc
}

// PortalSim returns the demo's simulated portal (nil outside the demo).
func (h *Hub) PortalSim() *joblibsim.Sim {
	if h.portal == nil {
		return nil
	}
	return h.portal.sim
}

// wirePortal adds the one-stop portal family: the job library and
// 免申即享 exchanges under one lease, and the console page. The demo starts
// the portal's simulator and plays the bureau's business system.
func wirePortal(ctx context.Context, h *Hub, opts Options, singleton singletonFunc) error {
	cfg := portal.ConfigFrom(h.Config())
	log := h.Logger().With("component", "portal")
	f := &portalFamily{}
	if opts.Demo {
		if _, err := keys.Ensure(ctx, h.sec.Keys, PortalKeyName, keys.MACKeySize); err != nil {
			return fmt.Errorf("demo: portal key: %w", err)
		}
		secret, err := h.sec.Keys.Get(ctx, PortalKeyName)
		if err != nil {
			return fmt.Errorf("demo: portal key: %w", err)
		}
		sim, err := joblibsim.Start(joblibsim.Options{KeyID: portalDemoKeyID, Secret: secret, Dept: cfg.Dept, RatePerSecond: 50, Seed: 1})
		if err != nil {
			return fmt.Errorf("demo: portal simulator: %w", err)
		}
		h.OnClose(func(context.Context) error { return sim.Close() })
		f.sim = sim
		cfg.Enabled = true
		cfg.JobLib.BaseURL, cfg.JobLib.KeyID = sim.URL(), portalDemoKeyID
		cfg.Mianshen.BaseURL, cfg.Mianshen.KeyID = sim.URL(), portalDemoKeyID
		cfg.Every, cfg.RetryWait = 2*time.Second, 500*time.Millisecond
	}
	if !cfg.Enabled {
		// The portal routes are not started (portalRouteOff); the
		// console's portal page says so and names them.
		log.Info("one-stop portal not enabled: its routes are not started (portal.enabled; docs/portal.md)")
		h.mon.Mount("nav_portal", "portal/", portal.OffHandler(func() map[string]string {
			out := map[string]string{}
			if h.engine == nil {
				return out
			}
			for id, why := range h.engine.Skipped() {
				if why == PortalOffReason {
					out[id] = why
				}
			}
			return out
		}))
		return nil
	}
	secret, err := h.sec.Keys.Get(ctx, PortalKeyName)
	if err != nil {
		return fmt.Errorf("portal signing key %q (issued by the portal; docs/portal.md): %w", PortalKeyName, err)
	}
	client, err := joblib.NewClient(cfg.Dept, cfg.JobLib, cfg.Mianshen, secret, secret)
	if err != nil {
		return err
	}
	client.ObserveBreaker(h.mon)
	h.portalClient.set(client)
	// The service reaches the portal only through the routes of
	// configs/routes/portal*.yaml (partner: portal: this client).
	svc, err := portal.New(ctx, cfg, portal.Deps{DB: h.Store(), Bus: h.parts.bus, Fields: h.sec.Fields, Payments: h.disbursement,
		Events: h.mon, Expect: h.mon, Logger: log, Clock: h.Clock(), Metrics: h.Registerer(), Node: h.Node(), Audit: h.sec.Audit})
	if err != nil {
		return err
	}
	f.svc = svc
	h.portal = f
	h.AddComponent("portal", singleton(PortalLease, svc.Run))
	canAct := func(r *http.Request) bool {
		u, ok := accounts.UserFrom(r.Context())
		return ok && u.Role == accounts.RoleOperator
	}
	// Inside the console's layout and navigation, behind its guard.
	h.mon.Mount("nav_portal", "portal/", svc.Handler(accounts.RequestUser, canAct, func(r *http.Request) string { return accounts.CSRFToken(r.Context()) }))
	if opts.Demo {
		h.AddComponent("demo-portal-business", ComponentFunc(func(ctx context.Context) error {
			if err := driveDemoPortal(ctx, svc, f.sim, h.Clock(), log.With("component", "demo-portal")); err != nil && ctx.Err() == nil {
				log.Error("demo portal business system stopped", "err", err)
			}
			<-ctx.Done()
			return nil
		}))
	}
	return nil
}

// driveDemoPortal plays the bureau's business system and the people on
// the portal: it drops this month's registers (newly eligible elderly
// allowance recipients taken from the demo's allowance list, so that their
// payouts follow the month's bank returns; severe-disability nursing
// subsidy; assistance recipients for 救助证明), lets people apply on the
// portal (website, app, self-service terminals, counters), and reports the
// applications' nodes as the business system does.
func driveDemoPortal(ctx context.Context, svc *portal.Service, sim *joblibsim.Sim, clk clock.Clock, log *slog.Logger) error {
	cfg := svc.Config()
	month := clk.Now().In(clock.Shanghai).Format("2006-01")
	if err := os.MkdirAll(cfg.Inbox, 0o700); err != nil {
		return err
	}
	// Elderly allowance: every 25th person of the demo's allowance list.
	g := synth.New(1)
	var elderly []portal.EligibleRecord
	var firstElder synth.Person
	for i := range DemoPersons {
		p := g.Next()
		if i >= 100 && i%25 == 0 {
			elderly = append(elderly, portal.NewEligible(p.ID, p.Name, p.Division, "shanghai", 0, ""))
			if firstElder.ID == "" {
				firstElder = p
			}
		}
	}
	// Severe disability: grades 1-4 (grades 3 and 4 fail the item's rule).
	dg := synth.New(33)
	var disabled []portal.EligibleRecord
	for i := range 40 {
		p := dg.Next()
		disabled = append(disabled, portal.NewEligible(p.ID, p.Name, p.Division, "shanghai", 1+i%4, ""))
	}
	// Assistance recipients: half of the 救助证明 applicants below.
	ag := synth.New(77)
	var assisted []portal.EligibleRecord
	var certApplicants []synth.Person
	for i := range 20 {
		p := ag.Next()
		certApplicants = append(certApplicants, p)
		if i%2 == 0 {
			assisted = append(assisted, portal.NewEligible(p.ID, p.Name, p.Division, "shanghai", 0, []string{"dibao", "tekun", "dibian"}[i%3]))
		}
	}
	// One elder applied for the allowance at a self-service terminal before
	// the month's push: 免申即享 must refuse the double.
	now := clk.Now().Truncate(time.Second)
	sim.AddApplication(joblib.Application{ApplicationID: "SBLN" + now.Format("060102") + "00001", ItemCode: "MZ-LNZHJT", ItemName: "老年综合津贴",
		Channel: joblib.ChannelTerminal, TerminalID: terminalOf(joblib.ChannelTerminal, firstElder.Division, 1),
		Applicant: joblib.Applicant{IDNumber: firstElder.ID, Name: firstElder.Name}, Division: firstElder.Division, SubmittedAt: now})
	for item, recs := range map[string][]portal.EligibleRecord{"MZ-LNZHJT": elderly, "MZ-ZDCJHL": disabled, "MZ-JZZM": assisted} {
		if err := writeInboxFile(cfg.Inbox, fmt.Sprintf("eligible-%s-%s.csv", item, month), func(w *os.File) error { return portal.WriteEligible(w, recs) }); err != nil {
			return err
		}
	}
	round := func() error {
		done := svc.RoundDone()
		svc.Kick()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return nil
		}
	}
	// The registers are in before anyone applies (a round under way when
	// they were written may have missed them: two rounds).
	for range 2 {
		if err := round(); err != nil {
			return nil
		}
	}
	// People apply: 救助证明 applicants and a mix over every item and channel.
	for i, p := range certApplicants {
		sim.AddApplication(joblib.Application{ApplicationID: fmt.Sprintf("SBJZ%s%05d", now.Format("060102"), i+1), ItemCode: "MZ-JZZM", ItemName: "救助证明",
			Channel: joblib.Channels[i%len(joblib.Channels)], TerminalID: terminalOf(joblib.Channels[i%len(joblib.Channels)], p.Division, i),
			Applicant: joblib.Applicant{IDNumber: p.ID, Name: p.Name}, Division: p.Division, SubmittedAt: now, Form: map[string]string{"purpose": "医疗救助"}})
	}
	ids := sim.AddApplications(60)
	// A person who found the item by themselves and is not on the register.
	stranger := synth.New(99).Next()
	sim.AddCase(joblib.Case{ItemCode: "MZ-LNZHJT", IDNumber: stranger.ID, Name: stranger.Name, Division: stranger.Division, Month: month, ConsentedAt: now})

	// The portal route pulls the applications onto the bus and the
	// service takes them (the business system knows an application once
	// the job library handed it over): wait for them, pushing meanwhile.
	all := append([]string{}, ids...)
	for i := range certApplicants {
		all = append(all, fmt.Sprintf("SBJZ%s%05d", now.Format("060102"), i+1))
	}
	for {
		if err := round(); err != nil {
			return nil
		}
		n, err := svc.KnownApplications(ctx, all)
		if err != nil {
			return err
		}
		if n == len(all) {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(time.Second):
		}
	}
	// The business system reports the nodes of its items' applications.
	steps := []struct{ node, result, reason string }{
		{joblib.NodeAccepted, joblib.ResultAccepted, ""},
		{joblib.NodeProcessing, "", ""},
		{joblib.NodeDone, joblib.ResultApproved, "符合条件，准予"},
	}
	for si, st := range steps {
		lines := [][]string{}
		for i, id := range ids {
			if a, ok := sim.Application(id); !ok || a.ItemCode == "MZ-JZZM" {
				continue // answered by the hub
			}
			result, reason := st.result, st.reason
			if st.node == joblib.NodeDone && i%7 == 3 {
				result, reason = joblib.ResultRefused, "家庭收入超过标准"
			}
			lines = append(lines, []string{id, st.node, result, reason, "", ""})
		}
		name := fmt.Sprintf("status-%s-%d.csv", clk.Now().In(clock.Shanghai).Format("20060102T150405"), si+1)
		if err := writeInboxFile(cfg.Inbox, name, func(w *os.File) error { return writeStatus(w, lines) }); err != nil {
			return err
		}
		if err := round(); err != nil {
			return nil
		}
	}
	// The severe-disability subsidy is paid by its own system: its paid
	// file of the month (one payment failed) gives those cases their payouts.
	var paid [][]string
	for i, r := range disabled {
		switch {
		case i == 0:
			paid = append(paid, []string{r.IDNumber, "28000", "failed", "银行账户已销户"})
		default:
			paid = append(paid, []string{r.IDNumber, "28000", "paid", ""})
		}
	}
	if err := writeInboxFile(cfg.Inbox, fmt.Sprintf("paid-MZ-ZDCJHL-%s.csv", month), func(w *os.File) error { return portal.WritePaid(w, paid) }); err != nil {
		return err
	}
	if err := round(); err != nil {
		return nil
	}
	log.Info("demo portal: registers dropped, applications answered; payouts follow the month's reconciled bank returns and the disability subsidy's paid file",
		"month", month, "elderly", len(elderly), "applications", len(ids)+len(certApplicants)+1)
	return nil
}

func terminalOf(channel, division string, i int) string {
	if channel != joblib.ChannelTerminal {
		return ""
	}
	return fmt.Sprintf("ZZ-%s-%03d", division, i%40+1)
}

// writeInboxFile writes a file under a temporary name and renames it into
// the inbox, so the service never reads half a file.
func writeInboxFile(dir, name string, write func(*os.File) error) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

func writeStatus(w *os.File, lines [][]string) error {
	return portal.WriteStatus(w, lines)
}
