package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/hpf"
	"github.com/shanghai-mca/mzhub/connectors/hpf/hpfsim"
	"github.com/shanghai-mca/mzhub/connectors/hrss"
	"github.com/shanghai-mca/mzhub/connectors/hrss/hrsssim"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
	"github.com/shanghai-mca/mzhub/connectors/ministry/ministrysim"
	"github.com/shanghai-mca/mzhub/connectors/samr"
	"github.com/shanghai-mca/mzhub/connectors/samr/samrsim"
	"github.com/shanghai-mca/mzhub/connectors/villagebank"
	"github.com/shanghai-mca/mzhub/connectors/villagebank/villagebanksim"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
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
	for _, p := range ps.list {
		// A partner whose breaker opens raises partner_down and turns its
		// console cells red, as a bank's SFTP breaker does.
		if o, ok := p.(breakerObserved); ok {
			o.ObserveBreaker(h.mon)
		}
	}
	planned := make([]verification.Partner, len(ps.list))
	for i, p := range ps.list {
		planned[i] = p
	}
	svc, err := verification.New(ctx, vc, verification.Deps{DB: h.Store(), Logger: log, Metrics: h.Registerer(), Clock: h.Clock(),
		Events: h.mon, Sealer: h.sec.Fields, Node: h.Node(), DataDir: cfg.DataDir, Bus: h.Bus()}, planned)
	if err != nil {
		return fmt.Errorf("wire: verification: %w", err)
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
		centre, err := demoCentreClient(ctx, h)
		if err != nil {
			return err
		}
		h.AddComponent("demo-verification-centre", ComponentFunc(func(ctx context.Context) error {
			if err := demo.drive(ctx, svc, centre, log.With("component", "demo")); err != nil && ctx.Err() == nil {
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
	if vc.HRSSVia == verification.HRSSViaFrontEnd {
		// Asked through the front-end tables: the service plans its calls,
		// the front-end routes deliver them (the SOAP route is held back).
		ps.list = append(ps.list, hrss.Planner{})
	} else if e := vc.HRSS; e.URL != "" {
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

// Every verification partner's client reports its breaker (wireVerification).
var (
	_ breakerObserved = (*hrss.Client)(nil)
	_ breakerObserved = (*hpf.Client)(nil)
	_ breakerObserved = (*samr.Client)(nil)
	_ breakerObserved = (*villagebank.Client)(nil)
	_ breakerObserved = (*ministry.Client)(nil)
	_ breakerObserved = (*joblib.Client)(nil) // the portal's (hub/portal.go)
)

type breakerObserved interface{ ObserveBreaker(connectors.Events) }

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
// the centre, the shipped partner verification.centre, submits five
// households through its API, signed with its key (two with a member
// registered elsewhere, asked through the ministry platform), Jiangsu
// sends two requests about Shanghai residents, and the centre reads the
// results through its API and logs them as they become final.
func (d *verificationDemo) drive(ctx context.Context, svc *verification.Service, centreAt func(context.Context) (*centreClient, error), log *slog.Logger) error {
	centre, err := centreAt(ctx)
	if err != nil {
		return err
	}
	var ids []string
	for i := range DemoHouseholds {
		b := verification.SubmitBody{Reference: fmt.Sprintf("DEMO-%s-%d", time.Now().Format("20060102"), i+1),
			Household: fmt.Sprintf("HH%06d", 1000+i), Division: "310104", Authorization: fmt.Sprintf("EAUTH-DEMO-%d", i+1),
			Members: householdsim.Household(1000+i, i%2 == 0 && i < 4)}
		id, err := centre.submit(ctx, b)
		if err != nil {
			return fmt.Errorf("demo: the verification centre's submission %s: %w", b.Reference, err)
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
			r, err := centre.result(ctx, id)
			if err != nil {
				return fmt.Errorf("demo: the verification centre's result %s: %w", id, err)
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

// verificationCentreAccess returns the partner guard's rule for the
// verification centre shipped in paths.partners/verification-centre.yaml
// (none when the file is absent). Its secret is partner/<key id> in the key
// provider: until an operator provisions it, the centre's calls are refused
// (docs/verification.md). In the demo the centre is the demo's own driver,
// calling from this host: its rule admits the loopback addresses and the
// listener's address instead of the file's.
func verificationCentreAccess(cfg config.Config, demo bool) ([]security.PartnerAccess, error) {
	path := filepath.Join(cfg.Paths.Partners, verification.CentreFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	c, err := verification.LoadCentre(path)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	if demo {
		c.AllowIPs = []string{"127.0.0.0/8", "::1"}
		if host, _, err := net.SplitHostPort(cfg.HTTP.Listen); err == nil {
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() && !a.IsLoopback() {
				c.AllowIPs = append(c.AllowIPs, a.String())
			}
		}
	}
	return []security.PartnerAccess{c.Access()}, nil
}

// centreClient is the verification centre's side of its API: signed calls
// to /internal/verification/v1/households (the demo's centre, and a model
// for the centre's integrators).
type centreClient struct {
	base   string // http://host:port
	keyID  string
	secret []byte
	hc     *http.Client
}

// call signs and sends one request and decodes a 2xx JSON answer into out;
// any other answer is an error carrying the problem's code and detail.
func (c *centreClient) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := sign.Sign(req, c.keyID, c.secret); err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		var p problem.Problem
		_ = json.Unmarshal(data, &p)
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Code, p.Detail)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// submit posts a household and returns its request id.
func (c *centreClient) submit(ctx context.Context, b verification.SubmitBody) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/internal/verification/v1/households", b, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("submit: the answer has no id")
	}
	return out.ID, nil
}

// result reads a request's result, partial or final.
func (c *centreClient) result(ctx context.Context, id string) (verification.Result, error) {
	var r verification.Result
	_, err := c.call(ctx, http.MethodGet, "/internal/verification/v1/households/"+url.PathEscape(id), nil, &r)
	return r, err
}

// demoCentreClient provisions the demo centre's key in the demo's key
// provider (generated on the first run, kept in the demo's key directory)
// and returns its client; the hub's address is known once it listens.
func demoCentreClient(ctx context.Context, h *Hub) (func(context.Context) (*centreClient, error), error) {
	rules, err := verificationCentreAccess(h.Config(), true)
	if err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("wire: verification: the demo needs the centre's file %s", filepath.Join(h.Config().Paths.Partners, verification.CentreFile))
	}
	kid := rules[0].KeyIDs[len(rules[0].KeyIDs)-1]
	if _, err := keys.Ensure(ctx, h.sec.Keys, keys.PartnerPrefix+kid, 32); err != nil {
		return nil, fmt.Errorf("wire: verification: demo centre key: %w", err)
	}
	return func(ctx context.Context) (*centreClient, error) {
		secret, err := h.sec.Keys.Get(ctx, keys.PartnerPrefix+kid)
		if err != nil {
			return nil, err
		}
		addr, err := h.Addr(ctx)
		if err != nil {
			return nil, err
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
			host = "127.0.0.1"
		}
		return &centreClient{base: "http://" + net.JoinHostPort(host, port), keyID: kid, secret: secret,
			hc: &http.Client{Timeout: 30 * time.Second}}, nil
	}, nil
}
