package portal

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Partner ids and flows in monitor events.
const (
	PartnerJobLib   = "portal.joblib"
	PartnerMianshen = "portal.mianshen"
	// PartnerBusiness is the bureau's business system dropping registers and status files.
	PartnerBusiness = "bureau"

	FlowFetch     = "case-pull"
	FlowStatus    = "status-push"
	FlowInbox     = "portal-inbox"
	FlowPush      = "mianshen-push"
	FlowCases     = "mianshen-fetch"
	FlowConfirm   = "mianshen-confirm"
	FlowPayout    = "mianshen-payout"
	componentName = "portal"
)

// Payments reads the allowance disbursement's reconciled outcomes
// (*disbursement.Service implements it).
type Payments interface {
	Outcomes(ctx context.Context, k disbursement.Kind, period string, ids []string) (map[string]disbursement.PaymentOutcome, bool, error)
}

// Expecter registers expected exchanges in the monitor.
type Expecter = monitor.Expecter

// Deps are what the service is built on.
type Deps struct {
	// DB is the hub's state store.
	DB *store.DB
	// Bus carries the exchanges with the portal: the service consumes the
	// applications, cases and answers the routes publish, and publishes its
	// outbox's batches for the routes to deliver.
	Bus bus.Bus
	// Fields seals ID numbers and computes their blind index.
	Fields *fieldcrypt.Ring
	// Payments reads paid allowances (nil: no payouts are reported).
	Payments Payments
	// Events receives an event per exchange.
	Events connectors.Events
	// Expect registers the monthly push's due time (nil: none).
	Expect Expecter
	// Logger is scoped by the caller.
	Logger *slog.Logger
	// Clock tells the time.
	Clock clock.Clock
	// Metrics registers the service's metrics (nil: none).
	Metrics prometheus.Registerer
	// Node names the replica in events.
	Node string
	// Audit records operators' actions (nil: not audited).
	Audit audit.Appender
}

// Service runs the portal exchanges.
type Service struct {
	cfg   Config
	d     Deps
	db    *store.DB
	log   *slog.Logger
	items map[string]*compiledItem
	sent  *prometheus.CounterVec
	// consumed counts the messages applied per topic.
	consumed *prometheus.CounterVec

	roundMu sync.Mutex // one round at a time
	kick    chan struct{}
	pokes   chan struct{} // publish what is due (Run)
	doneMu  sync.Mutex
	done    chan struct{} // closed and replaced after each round
}

// New checks cfg, migrates the service's tables and returns the service.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.DB == nil || d.Bus == nil || d.Fields == nil {
		return nil, errors.New("portal: store, bus and field keys are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Events == nil {
		d.Events = discardEvents{}
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("portal: migrations: %w", err)
	}
	if err := d.DB.Migrate(ctx, componentName, sub); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	items, err := compileItems(cfg.Items)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, d: d, db: d.DB, log: d.Logger, items: items, kick: make(chan struct{}, 1), pokes: make(chan struct{}, 1), done: make(chan struct{})}
	s.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_portal_items_total",
		Help: "Items exchanged with the one-stop portal by kind (application, case, node, push, confirm, payout) and outcome."}, []string{"kind", "outcome"})
	s.consumed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_portal_consumed_total",
		Help: "Messages the portal service applied per bus topic (applications, cases, answers)."}, []string{"topic"})
	if d.Metrics != nil {
		for _, c := range []**prometheus.CounterVec{&s.sent, &s.consumed} {
			if err := d.Metrics.Register(*c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("portal: metrics: %w", err)
				}
				*c = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return s, nil
}

type discardEvents struct{}

func (discardEvents) Emit(monitor.Event) {}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Kick asks Run for a round now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// RoundDone returns a channel closed when the next round ends (take it
// before kicking, so no round is missed).
func (s *Service) RoundDone() <-chan struct{} {
	s.doneMu.Lock()
	defer s.doneMu.Unlock()
	return s.done
}

// Round does one pass of the exchanges the service starts: the business
// system's files, the month's pushes, payouts, and the outbox's batches
// published for the routes. (Applications, cases and the routes' answers
// are consumed as they arrive, by Run.) Each step's failure is reported and
// the others go on.
func (s *Service) Round(ctx context.Context) error {
	s.roundMu.Lock()
	defer func() {
		s.roundMu.Unlock()
		s.doneMu.Lock()
		close(s.done)
		s.done = make(chan struct{})
		s.doneMu.Unlock()
	}()
	var errs []error
	// step runs one step; its failure is reported as a failed event of
	// the step's partner flow (the outbox reports its own, kind by kind).
	step := func(name, partner, flow string, f func(context.Context) error) {
		if ctx.Err() != nil {
			return
		}
		if err := f(ctx); err != nil {
			if partner != "" {
				s.stepFailed(ctx, partner, flow, name, err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	step("inbox", PartnerBusiness, FlowInbox, s.scanInbox)
	step("push plan", PartnerMianshen, FlowPush, s.planPushes)
	step("expect", PartnerMianshen, FlowPush, s.expectPush)
	step("expect registers", PartnerBusiness, FlowInbox, s.expectRegisters)
	step("payouts", PartnerMianshen, FlowPayout, s.planPayouts)
	step("outbox", "", "", s.Drain)
	return errors.Join(errs...)
}

// stepFailed reports a failed step (a store or file-system error: what is
// left is retried at the next round) as a failed event of partner's flow
// (monitor.StepFailed), unless the step emitted its own event
// (monitor.Reported) or the service is stopping.
func (s *Service) stepFailed(ctx context.Context, partner, flow, step string, err error) {
	if ev, ok := monitor.StepFailed(partner, flow, step, err); ok && ctx.Err() == nil {
		s.emit(ev)
	}
}

func (s *Service) now() time.Time { return s.d.Clock.Now() }

func (s *Service) emit(ev monitor.Event) {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	if ev.Status == "" {
		ev.Status = monitor.OK
	}
	ev.Channel = "http"
	ev.Component = componentName
	ev.Node = s.d.Node
	s.d.Events.Emit(ev)
}

// mark reads a mark ("" when unset).
func (s *Service) mark(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, s.db.Rebind(`SELECT value FROM portal_marks WHERE name = ?`), name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

func (s *Service) setMark(ctx context.Context, tx *sql.Tx, name, value string) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_marks (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`), name, value, s.now().UnixMilli())
	return err
}

// person returns the blind index and the sealed form of an ID number.
func (s *Service) person(id string) (key, sealed string, err error) {
	sealed, err = s.d.Fields.Encrypt(id)
	if err != nil {
		return "", "", fmt.Errorf("portal: seal ID number: %w", err)
	}
	return s.d.Fields.BlindIndex(id), sealed, nil
}

func (s *Service) refuse(ctx context.Context, tx *sql.Tx, source, ref string, line int64, reason string) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_refused (source, ref, line, reason, at) VALUES (?, ?, ?, ?, ?)`),
		source, ref, line, reason, s.now().UnixMilli())
	return err
}

func monthOf(t time.Time) string { return t.In(clock.Shanghai).Format("2006-01") }
