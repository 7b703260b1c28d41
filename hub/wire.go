package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/hubmon"
	"github.com/shanghai-mca/mzhub/monitor/spool"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/baseline"
	"github.com/shanghai-mca/mzhub/security/keys"
	acctsvc "github.com/shanghai-mca/mzhub/services/bankaccounts"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/services/funeral"
	"github.com/shanghai-mca/mzhub/services/verification"
	"github.com/shanghai-mca/mzhub/store/lease"
)

// Options choose what Build adds to the configured hub.
type Options struct {
	// Demo starts the partner simulators beside the hub and drives real
	// flows through it (mzhub demo, end-to-end tests).
	Demo bool
	// Banks, when not nil, are the banks the disbursement service pays
	// through instead of the partner files (tests give their simulators).
	Banks []bank.Config
}

// parts are the components Build wires, for the demo, the CLI and tests.
type parts struct {
	sec          *baseline.Baseline
	mon          *hubmon.Monitor
	bus          bus.Bus
	engine       *routes.Engine
	funeral      *funeral.API
	fregs        *funeral.Registry
	disbursement *disbursement.Service
	verification *verification.Service
	// bankCfgs are the banks the disbursement service pays through and
	// bankSims their simulators in the demo (the account lifecycle uses both).
	bankCfgs     []bank.Config
	bankSims     []*banksim.Bank
	accounts     *acctsvc.Service
	leases       *lease.Elector
	partnerStore *funeral.PartnerStore
	partnerSync  *funeral.PartnerSync
	portal       *portalFamily // hub/portal.go
	// partnerClients are the verification partners' clients for the
	// routes' connector kinds (hub/verification.go fills it).
	partnerClients *household.Directory
	// portalClient is the portal's client for the joblib kind's
	// `partner: portal` (hub/portal.go fills it).
	portalClient *portalClient
	// otherClients are the other families' clients for their kinds'
	// `partner:` (the data sea's datasea.Endpoint).
	otherClients *partnerSet
	// dataseaPulled is told whenever the demo's consumer applied data sea
	// records (hub/datasea.go; nil outside the demo).
	dataseaPulled chan struct{}
	// dataseaSim is the demo's simulated data sea (nil outside the demo).
	dataseaSim *dataseasim.Sim

	// bookingURLs overrides the registry's booking URLs (the demo's
	// simulated homes listen on ports chosen at start).
	bookingMu   sync.Mutex
	bookingURLs map[string]string
}

// Build creates the whole hub from cfg: the state store, bus, monitor,
// route engine, security baseline, every connector and service and the
// HTTP surface. It starts nothing; call Run.
func Build(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*Hub, error) {
	return build(ctx, cfg, log, func(h *Hub) error { return h.wire(ctx, opts) })
}

// build opens a hub with New and wires it; on a wiring error it closes
// what was opened.
func build(ctx context.Context, cfg config.Config, log *slog.Logger, wire func(*Hub) error) (*Hub, error) {
	h, err := New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := wire(h); err != nil {
		_ = h.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return h, nil
}

// Security returns the security baseline (keys, audit, accounts, partners).
func (h *Hub) Security() *baseline.Baseline { return h.sec }

// Monitor returns the running monitor.
func (h *Hub) Monitor() *hubmon.Monitor { return h.mon }

// Bus returns the hub's bus (sealed when bus.seal_bodies is on).
func (h *Hub) Bus() bus.Bus { return h.bus }

// Routes returns the route engine.
func (h *Hub) Routes() *routes.Engine { return h.engine }

// Disbursement returns the allowance disbursement service.
func (h *Hub) Disbursement() *disbursement.Service { return h.disbursement }

// bookingURL returns the overridden booking URL of a home, or "" to use
// the registry's.
func (w *parts) bookingURL(partnerID string) string {
	w.bookingMu.Lock()
	defer w.bookingMu.Unlock()
	return w.bookingURLs[partnerID]
}

func (w *parts) setBookingURLs(urls map[string]string) {
	w.bookingMu.Lock()
	defer w.bookingMu.Unlock()
	w.bookingURLs = urls
}

// singletonFunc wraps a periodic job so that one replica at a time runs it.
type singletonFunc func(name string, f func(context.Context) error) Component

// wireCore adds what every path of the hub needs: leases, the security
// baseline (keys, audit, accounts, partner guard with extra's rules) and
// the monitor. It returns the wrapper of singleton jobs and the sealer of
// bus bodies and dead letters (nil when bus.seal_bodies is off).
func (h *Hub) wireCore(ctx context.Context, extra []security.PartnerAccess) (singletonFunc, bus.Sealer, error) {
	cfg := h.Config()
	log := h.Logger()
	w := &h.parts
	// Leases: with several replicas on one state database, the periodic
	// jobs (monitor checks and reports, dead-letter replays, the funeral
	// change relay, session and audit pruning) run on one at a time.
	// The node name is this replica's identity in every lease: claim it
	// first, so that two live replicas never share it. A CLI process takes
	// an identity of its own instead.
	if h.cli {
		h.node = cliNode(h.node)
	} else if err := h.claimNode(ctx); err != nil {
		return nil, nil, fmt.Errorf("wire: %w", err)
	}
	leases, err := lease.New(ctx, h.Store(), lease.Options{Node: h.Node(), TTL: cfg.Replica.LeaseTTL, Clock: h.Clock(),
		Logger: log.With("component", "lease"), Registerer: h.Registerer()})
	if err != nil {
		return nil, nil, fmt.Errorf("wire: leases: %w", err)
	}
	w.leases = leases
	singleton := func(name string, f func(context.Context) error) Component {
		return ComponentFunc(func(ctx context.Context) error { return leases.Run(ctx, name, f) })
	}

	// Security baseline: keys, audit chain, field encryption, file signer,
	// partner access guard, console accounts.
	sec, err := baseline.Open(ctx, baseline.Options{
		Config: cfg.Security, DB: h.Store(), Logger: log, Registerer: h.Registerer(), Clock: h.Clock(),
		ExtraPartners: extra, LoginPath: "/console/auth/login", DataDir: cfg.DataDir,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("wire: security: %w", err)
	}
	w.sec = sec
	h.OnClose(sec.Commits.Close)
	h.AddComponent("security", singleton("security.maintenance", sec.Run))
	h.AddComponent("audit-throttle", sec.Unauthenticated)
	// The partner API's rate limits are for the whole cluster: each replica
	// allows its share, by the count of live replicas.
	h.AddComponent("replicas", ComponentFunc(func(ctx context.Context) error {
		return leases.Member(ctx, "replica", sec.Partners.SetReplicas)
	}))
	h.Handle("/console/auth/", http.StripPrefix("/console/auth", sec.Accounts.Handler()))
	h.ServeMetricsBehind(sec.Accounts.Guard(accounts.RoleOperator, accounts.RoleAuditor, accounts.RoleSecurityAdmin))

	// Bodies (payment records, burial records, ...) are sealed at rest; the
	// engine's dead letters use the same keys.
	var sealer bus.Sealer
	if cfg.Bus.SealBodies {
		sealer = sec.Fields
	}

	// The events of exchanges acknowledged to partners are spooled in the
	// state database until the event store has them (a SIGKILL loses
	// none); a CLI process acknowledges nothing to partners.
	var evSpool monitor.Spool
	if !h.cli {
		sp, err := spool.Open(ctx, h.Store(), h.Node(), h.Clock())
		if err != nil {
			return nil, nil, fmt.Errorf("wire: monitor spool: %w", err)
		}
		evSpool = sp
	}

	// Monitor: event writer, stores, expectations, alerts, console.
	mon, err := hubmon.New(ctx, cfg.Monitor, hubmon.Deps{
		Spool: evSpool,
		// Funeral homes, cemeteries and columbaria by their registry names.
		PartnerName: func(id string) (string, bool) {
			if w.fregs == nil {
				return "", false
			}
			p, ok := w.fregs.Partner(id)
			return p.Name, ok && p.Name != ""
		},
		Logger: log.With("component", "monitor"), Metrics: h.Registerer(), Clock: h.Clock(), State: h.Store(),
		Node: h.Node(), Auth: sec.Accounts.Guard(accounts.RoleOperator, accounts.RoleAuditor),
		User: accounts.RequestUser,
		// Auditors read; only operators retry, replay, drop and acknowledge.
		CanAct: func(r *http.Request) bool {
			u, ok := accounts.UserFrom(r.Context())
			return ok && u.Role == accounts.RoleOperator
		},
		Actions: deadLetterActions{routes.NewDeadLetters(h.Store()).SealWith(sealer), sec.Audit},
		Auditor: sec.Audit, Leases: leases, Topology: h.wireTopology(),
		// The batches page drives the allowance cycles; forms carry the session's CSRF token.
		Cycles: consoleCycles{h}, Accounts: consoleAccounts{h}, CSRF: func(r *http.Request) string { return accounts.CSRFToken(r.Context()) },
	})
	if err != nil {
		return nil, nil, fmt.Errorf("wire: monitor: %w", err)
	}
	w.mon = mon
	// The monitor store being down does not stop exchanges (events are
	// buffered), so readiness reports it as degraded.
	h.AddCheck("monitor_store", func(context.Context) error {
		st := mon.Writer().Stats()
		if st.StoreError != nil {
			return fmt.Errorf("%w: events not stored since %s, %d buffered, %d dropped: %v", ErrDegraded,
				st.FailingSince.UTC().Format(time.RFC3339), st.Held, st.Dropped, st.StoreError)
		}
		return nil
	})
	h.AddComponent("monitor", mon)
	h.OnClose(mon.Close)
	h.Handle("/console/", http.StripPrefix("/console", mon.Console()))
	return singleton, sealer, nil
}

// wire adds every component and handler of the hub. It is the composition
// root: the only place that knows all packages.
func (h *Hub) wire(ctx context.Context, opts Options) error {
	cfg := h.Config()
	log := h.Logger()
	w := &h.parts

	// A directory the configuration names but that is not there is a
	// silent gap (the partner API, a bank or every route missing): it
	// fails readiness with its name, and is logged.
	if !opts.Demo {
		if missing := missingDirs(cfg); len(missing) > 0 {
			err := fmt.Errorf("configured directories not found: %s", strings.Join(missing, "; "))
			log.Error("configuration incomplete", "err", err)
			h.AddCheck("paths", func(context.Context) error { return err })
		}
	}

	// Partner registry of funeral homes, cemeteries and columbaria: the
	// files (or the demo's partners) are imported into the state store,
	// whose partners the guard admits (wirePartnerState).
	var fdemo *funeralhomesim.Demo
	var fpartners []funeral.Partner
	importer := "system:registry-file"
	if opts.Demo {
		d, err := demoFuneral(log)
		if err != nil {
			return err
		}
		fdemo, w.fregs, importer = d, d.Registry(), "system:demo"
		fpartners = w.fregs.Partners()
	} else if _, err := os.Stat(funeral.ConfigFrom(cfg).PartnersDir); err == nil {
		reg, err := funeral.LoadRegistry(funeral.ConfigFrom(cfg).PartnersDir)
		if err != nil {
			return fmt.Errorf("wire: funeral partners: %w", err)
		}
		w.fregs, fpartners = reg, reg.Partners()
	}

	// The verification centre's rule is a configured one (its file in
	// paths.partners, its key in the key provider), not funeral state.
	centre, err := verificationCentreAccess(cfg, opts.Demo)
	if err != nil {
		return err
	}
	singleton, sealer, err := h.wireCore(ctx, centre)
	if err != nil {
		return err
	}
	if w.fregs != nil {
		if err := h.wirePartnerState(ctx, fpartners, importer); err != nil {
			return err
		}
	}
	sec, mon := w.sec, w.mon

	// Bus.
	switch cfg.Bus.Kind {
	case "pulsar":
		// Producer names follow the replica's claimed node name: unique
		// among live replicas and stable across its restarts (broker
		// deduplication recognises a restarted producer by it).
		pc := cfg.Bus.Pulsar
		if pc.ProducerName == "" {
			pc.ProducerName = h.Node()
		}
		b, err := openPulsar(ctx, pc, log.With("component", "bus"))
		if err != nil {
			return fmt.Errorf("wire: bus: %w", err)
		}
		w.bus = b
	default:
		b, err := local.Open(ctx, h.Store(), cfg.Bus.Local, log.With("component", "bus"))
		if err != nil {
			return fmt.Errorf("wire: bus: %w", err)
		}
		w.bus = b
	}
	h.OnClose(w.bus.Close)
	h.AddCheck("bus", func(ctx context.Context) error { return bus.Check(ctx, w.bus) })
	// Bodies (payment records, burial records, ...) are sealed at rest; the
	// engine's dead letters use the same keys.
	if sealer != nil {
		w.bus = bus.Sealed(w.bus, sealer)
	}

	// Route engine (its dead letters are acted on from the console).
	w.partnerClients = household.NewDirectory()
	w.portalClient = &portalClient{}
	w.otherClients = &partnerSet{}
	engine, err := routes.NewEngine(routes.EngineConfig{Dir: cfg.Paths.Routes, Node: h.Node(), DrainTimeout: cfg.HTTP.ShutdownTimeout * 2 / 3}, routes.Deps{
		Bus: w.bus, Store: h.Store(), Connectors: connectors.Builtin(), Logger: log,
		Metrics: h.Registerer(), Clock: h.Clock(), Mapper: routes.NewMappingsMapper(cfg.Paths.Mappings),
		DataDir: cfg.DataDir, Events: mon, Sealer: sealer, Leases: w.leases, Partners: hubPartners{w.partnerClients, w.portalClient, w.otherClients},
		Skip: partnerRouteOff(w.portalClient, w.otherClients, w.partnerClients),
	})
	if err != nil {
		return fmt.Errorf("wire: routes: %w", err)
	}
	w.engine = engine

	if _, err := os.Stat(cfg.Paths.Routes); err == nil {
		if err := engine.Load(cfg.Paths.Routes); err != nil {
			return fmt.Errorf("wire: routes: %w", err)
		}
	}
	h.AddComponent("routes", engine)
	h.OnClose(engine.Close)

	// Partner API: every /partner/, /sandbox/, /routes/ and /internal/ call
	// passes the security guard first (signature, nonce, allowlist, rate
	// limits, audit).
	partnerMux := http.NewServeMux()
	internalMux := http.NewServeMux()
	guard := func(next http.Handler) http.Handler { return problem.Recover(log, sec.Partners.Middleware(next)) }
	if w.fregs != nil {
		fdeps := funeral.Deps{
			Logger: log.With("component", "funeral"), Metrics: h.Registerer(), Store: h.Store(), Clock: h.Clock(),
			Events: mon, Bus: w.bus, Partners: w.fregs, Sealer: sec.Fields,
			MaxBodyBytes: cfg.Security.PartnerAPI.MaxBodyBytes, // the one body limit, also the guard's
		}
		api, err := funeral.NewAPI(ctx, funeral.ConfigFrom(cfg), fdeps)
		if err != nil {
			return fmt.Errorf("wire: funeral API: %w", err)
		}
		w.funeral = api
		h.AddComponent("funeral", singleton("funeral.relay", api.Run))
		h.OnClose(api.Close)
		if funeral.ConfigFrom(cfg).Environment == funeral.EnvSandbox {
			// A hub run as the hosted sandbox takes partners' calls only
			// under /sandbox/, on the sandbox's own store: production's
			// path would put integrators' test data into the main store
			// (where `mzhub conformance` does not look for it).
			partnerMux.Handle("/partner/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				problem.Write(w, r, problem.NotFound("this hub is the sandbox (funeral.environment: sandbox): call /sandbox/partner/v1/… and sign that whole path"))
			}))
		} else {
			partnerMux.Handle("/partner/v1/", api)
		}

		// The sandbox: the same API on its own store, for integrators.
		sdeps := fdeps
		// Sandbox bodies are integrators' test data, left unsealed so that
		// `mzhub conformance --role pusher` reads them without the keys.
		sdeps.Metrics, sdeps.Bus, sdeps.Sealer = nil, nil, nil
		sb, sdb, err := funeral.OpenSandbox(ctx, funeral.ConfigFrom(cfg), sdeps, cfg.DataDir)
		if err != nil {
			return fmt.Errorf("wire: funeral sandbox: %w", err)
		}
		h.AddComponent("funeral-sandbox", sb)
		h.OnClose(func(ctx context.Context) error { _ = sb.Close(ctx); return sdb.Close() })
		h.Handle("/sandbox/", guard(http.StripPrefix("/sandbox", sb)))

		// Bureau systems and the one-stop portal: read API and booking.
		booking, err := funeral.NewBooking(w.fregs, funeral.BookingOptions{
			Secret: func(ctx context.Context, keyID string) ([]byte, error) {
				return sec.Keys.Get(ctx, keys.PartnerPrefix+keyID)
			},
			BaseURL: w.bookingURL, Events: mon, Clock: h.Clock(),
		})
		if err != nil {
			return fmt.Errorf("wire: funeral booking: %w", err)
		}
		internalMux.Handle("/internal/funeral/v1/homes/", booking.Handler("/internal/funeral"))
		internalMux.Handle("/internal/funeral/", api.BureauHandler("/internal/funeral"))
		mon.Mount("nav_funeral", "funeral/", api.OpsHandler()) // inside the console's layout, behind its guard
	}
	h.Handle("/internal/", guard(internalMux))
	h.Handle("/docs/api/", http.StripPrefix("/docs/api", apispec.Handler()))
	h.Handle("/partner/", guard(partnerMux))
	h.Handle("/routes/", guard(engine.Handler()))
	h.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
	// The allowance disbursement service over the six banks (their
	// simulators in the demo).
	var bankCfgs []bank.Config
	switch {
	case opts.Banks != nil:
		bankCfgs = opts.Banks
	case opts.Demo:
		bankCfgs, err = h.startBankSims(ctx)
	default:
		bankCfgs, err = BankConfigs(cfg.Paths.Partners)
	}
	if err != nil {
		return err
	}
	dc := DisbursementConfig(cfg)
	if opts.Demo {
		dc.PollEvery = 200 * time.Millisecond
	}
	if err := h.wireDisbursement(ctx, bankCfgs, dc, singleton); err != nil {
		return err
	}
	h.bankCfgs = bankCfgs
	if err := h.wireFamilies(ctx, opts, singleton); err != nil {
		return err
	}
	if opts.Demo {
		if err := h.startDemoFlows(ctx, fdemo); err != nil {
			return err
		}
	}
	return nil
}

// deadLetterActions lets console users act on the route engine's dead letters.
type deadLetterActions struct {
	dl  *routes.DeadLetters
	log *audit.Log
}

var _ monitor.DeadLetterActions = deadLetterActions{}

var errNotDeadLetter = errors.New("not a dead letter of the route engine")

func (d deadLetterActions) Retry(ctx context.Context, exchangeID, user string) error {
	return d.Replay(ctx, exchangeID, user)
}

func (d deadLetterActions) Replay(ctx context.Context, exchangeID, user string) error {
	id, err := d.resolve(ctx, exchangeID)
	if err != nil {
		return err
	}
	return d.dl.Replay(ctx, id, "user:"+user, d.log)
}

func (d deadLetterActions) Drop(ctx context.Context, exchangeID, user, reason string) error {
	id, err := d.resolve(ctx, exchangeID)
	if err != nil {
		return err
	}
	return d.dl.Drop(ctx, id, "user:"+user, d.log)
}

// resolve finds the open dead letter of an exchange (the route engine's
// events carry the message's idempotency key as the exchange id).
func (d deadLetterActions) resolve(ctx context.Context, exchangeID string) (int64, error) {
	id, err := d.dl.FindOpen(ctx, exchangeID)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %w", exchangeID, errNotDeadLetter, err)
	}
	return id, nil
}

// missingDirs names the configured directories that do not exist, each
// with its configuration key.
func missingDirs(cfg config.Config) []string {
	var missing []string
	for _, d := range []struct{ key, dir string }{
		{"paths.routes", cfg.Paths.Routes},
		{"paths.mappings", cfg.Paths.Mappings},
		{"paths.partners", cfg.Paths.Partners},
		{"funeral.partners_dir", funeral.ConfigFrom(cfg).PartnersDir},
	} {
		if _, err := os.Stat(d.dir); err != nil {
			missing = append(missing, fmt.Sprintf("%s %s", d.key, d.dir))
		}
	}
	return missing
}
