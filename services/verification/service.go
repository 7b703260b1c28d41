package verification

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/topology"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Partner is one unit the household is checked with: the service plans
// its calls; the routes of configs/routes/verification*.yaml deliver them
// through the partner's connector kind (household.Partner, which the
// connectors of connectors/hrss, hpf, samr, villagebank and ministry
// implement).
type Partner interface {
	// ID is the partner id ("hrss", "villagebank.vb01", ...).
	ID() string
	// Scopes returns the calls a household needs: one "" for in-city
	// partners, one province code per province for the ministry, none when
	// the partner has nothing to be asked.
	Scopes(members []household.Member) []string
}

// Bus topics of the exchange: the service publishes each call on its
// partner's ask topic and consumes the answers the routes publish.
const (
	TopicAskHRSS        = "verification.ask.hrss"
	TopicAskHPF         = "verification.ask.hpf"
	TopicAskSAMR        = "verification.ask.samr"
	TopicAskVillageBank = "verification.ask.villagebank"
	TopicAskMinistry    = "verification.ask.ministry"
	TopicAnswers        = "verification.answers"
)

// AskTopic is the topic a partner's calls are published on; the 14 village
// banks share one (their route's sink picks the bank by the
// household-partner header).
func AskTopic(partnerID string) string {
	switch {
	case strings.HasPrefix(partnerID, "villagebank."):
		return TopicAskVillageBank
	default:
		return "verification.ask." + partnerID
	}
}

// Items a request may ask to check, and the partners that answer them.
const (
	ItemSocialSecurity = "social_security"
	ItemHousingFund    = "housing_fund"
	ItemBusiness       = "business"
	ItemDeposits       = "deposits"
	ItemCrossProvince  = "cross_province"
)

// Items lists every item.
var Items = []string{ItemSocialSecurity, ItemHousingFund, ItemBusiness, ItemDeposits, ItemCrossProvince}

// ItemOf returns the item a partner answers.
func ItemOf(partnerID string) string {
	switch {
	case partnerID == "hrss":
		return ItemSocialSecurity
	case partnerID == "hpf":
		return ItemHousingFund
	case partnerID == "samr":
		return ItemBusiness
	case strings.HasPrefix(partnerID, "villagebank."):
		return ItemDeposits
	case partnerID == "ministry":
		return ItemCrossProvince
	}
	return ""
}

// Request is a household to verify.
type Request struct {
	// Reference is the caller's case number; submitting it again returns
	// the same request.
	Reference string `json:"reference"`
	// Household is the household number.
	Household string `json:"household"`
	// Division is the six-digit division code of the household's street.
	Division string `json:"division,omitempty"`
	// Authorization is the household's authorisation reference.
	Authorization string `json:"authorization"`
	// Items to check (Items); empty means all.
	Items []string `json:"items,omitempty"`
	// Members of the household.
	Members []household.Member `json:"members"`
	// Origin is empty for the bureau's own requests and the asking
	// province's code for requests arriving through the ministry platform.
	Origin string `json:"origin,omitempty"`
	// ReceivedAt is when an inbound request reached the platform (zero: now).
	ReceivedAt time.Time `json:"received_at,omitzero"`
}

// Validate reports every problem of r.
func (r Request) Validate() error {
	var fe []FieldError
	add := func(f, reason string) { fe = append(fe, FieldError{Field: f, Reason: reason}) }
	if r.Reference == "" || len(r.Reference) > 64 {
		add("reference", "required, at most 64 characters")
	}
	if r.Household == "" || len(r.Household) > 64 {
		add("household", "required, at most 64 characters")
	}
	if r.Authorization == "" || len(r.Authorization) > 128 {
		add("authorization", "required, at most 128 characters")
	}
	if r.Division != "" && (len(r.Division) != 6 || strings.Trim(r.Division, "0123456789") != "") {
		add("division", "six digits")
	}
	for i, it := range r.Items {
		if !slices.Contains(Items, it) {
			add(fmt.Sprintf("items[%d]", i), "unknown item; one of "+strings.Join(Items, ", "))
		}
	}
	if len(r.Members) == 0 || len(r.Members) > 20 {
		add("members", "one to twenty members")
	}
	seen := map[string]bool{}
	for i, m := range r.Members {
		if !mask.ValidID(m.IDNumber) {
			add(fmt.Sprintf("members[%d].id_number", i), "not a valid resident ID number (GB 11643)")
		} else if seen[m.IDNumber] {
			add(fmt.Sprintf("members[%d].id_number", i), "repeats another member")
		}
		seen[m.IDNumber] = true
		if m.Name == "" || len(m.Name) > 64 {
			add(fmt.Sprintf("members[%d].name", i), "required, at most 64 bytes")
		}
	}
	if len(fe) > 0 {
		return &InvalidError{Fields: fe}
	}
	return nil
}

func (r Request) wants(item string) bool { return len(r.Items) == 0 || slices.Contains(r.Items, item) }

// Sealer encrypts stored requests and answers (they hold ID numbers);
// security/fieldcrypt.Ring implements it.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Events receives monitor events; the monitor's writer implements it.
type Events interface{ Emit(ev monitor.Event) }

// Deps are what the service is handed.
type Deps struct {
	// DB is the state store.
	DB *store.DB
	// Logger is scoped by the caller.
	Logger *slog.Logger
	// Metrics registers the service's metrics (nil: none).
	Metrics prometheus.Registerer
	// Clock tells the time (nil: the wall clock).
	Clock clock.Clock
	// Events receives the monitor events (nil: none).
	Events Events
	// Sealer encrypts requests and answers at rest (nil: stored as they are).
	Sealer Sealer
	// Node names the process in events.
	Node string
	// DataDir is where reports go when ReportDir is empty.
	DataDir string
	// Bus carries the calls to the partners' routes and their answers back.
	Bus bus.Bus
}

// Service is the verification exchange. It is safe for concurrent use.
type Service struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	clock    clock.Clock
	partners map[string]Partner
	order    []string
	// returnWake wakes the return loop; returning holds this run's
	// publication stamp of each answer on TopicReturn (by request id).
	returnWake chan struct{}
	returnMu   sync.Mutex
	returning  map[string]int64
	wake       map[string]chan struct{}
	quality    *tracker
	metrics    *metrics
	// pub publishes the calls, only on the topics Topology declares.
	pub topology.Publisher

	rngMu sync.Mutex
	rng   *rand.Rand

	changedMu sync.Mutex
	changed   chan struct{}

	// writes bounds the service's concurrent writes: SQLite has one
	// writer at a time, and a hundred calls finishing at once must not
	// crowd out the hub's other writers (leases) in its busy wait.
	writes chan struct{}
}

// write runs fn holding a slot of the service's writes.
func (s *Service) write(ctx context.Context, fn func() error) error {
	select {
	case s.writes <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writes }()
	return fn()
}

// New migrates the store and returns the service over partners.
func New(ctx context.Context, cfg Config, deps Deps, partners []Partner) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verification: config: %w", err)
	}
	if deps.DB == nil {
		return nil, errors.New("verification: no state store")
	}
	if deps.Bus == nil {
		return nil, errors.New("verification: no bus")
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := deps.DB.Migrate(ctx, "verification", sub); err != nil {
		return nil, fmt.Errorf("verification: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Logger, clock: deps.Clock, partners: map[string]Partner{}, wake: map[string]chan struct{}{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), changed: make(chan struct{}),
		returnWake: make(chan struct{}, 1), returning: map[string]int64{}}
	for _, p := range partners {
		if _, dup := s.partners[p.ID()]; dup {
			return nil, fmt.Errorf("verification: partner %s twice", p.ID())
		}
		if ItemOf(p.ID()) == "" {
			return nil, fmt.Errorf("verification: partner %s answers no known item", p.ID())
		}
		s.partners[p.ID()] = p
		s.order = append(s.order, p.ID())
		s.wake[p.ID()] = make(chan struct{}, 1)
	}
	s.pub = Topology.Guard(deps.Bus)
	s.quality = newTracker(cfg.AlertWindow)
	s.writes = make(chan struct{}, 1)
	if deps.DB.Dialect() == store.Postgres {
		s.writes = make(chan struct{}, 16)
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// Partners lists the wired partner ids in order.
func (s *Service) Partners() []string { return slices.Clone(s.order) }

// Changed returns a channel closed at the next change of any call or
// request (the signal tests and the demo wait on).
func (s *Service) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

func (s *Service) signal() {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Service) seal(b []byte) ([]byte, error) {
	if s.deps.Sealer == nil {
		return b, nil
	}
	return s.deps.Sealer.Seal(b)
}

func (s *Service) open(b []byte) ([]byte, error) {
	if s.deps.Sealer == nil {
		return b, nil
	}
	return s.deps.Sealer.Open(b)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func newID(now time.Time) string {
	b := make([]byte, 6)
	_, _ = crand.Read(b)
	return "VR" + now.In(clock.Shanghai).Format("20060102") + strings.ToUpper(hex.EncodeToString(b))
}

// deadlineOf is a partner's answer deadline.
func (s *Service) deadlineOf(partner string) time.Duration {
	if partner == "ministry" {
		return s.cfg.CrossProvinceDeadline
	}
	return s.cfg.Deadline
}

type plannedCall struct{ partner, scope string }

func (s *Service) plan(r Request) []plannedCall {
	var out []plannedCall
	for _, id := range s.order {
		item := ItemOf(id)
		if !r.wants(item) || (item == ItemCrossProvince && r.Origin != "") {
			continue
		}
		for _, scope := range s.partners[id].Scopes(r.Members) {
			out = append(out, plannedCall{id, scope})
		}
	}
	return out
}

// Submit stores r and its calls, one per partner that applies, and wakes
// the partners' dispatchers. Submitting the same origin and reference
// again returns the first request's id with created false.
func (s *Service) Submit(ctx context.Context, r Request) (id string, created bool, err error) {
	if err := r.Validate(); err != nil {
		return "", false, err
	}
	now := s.clock.Now()
	received := now
	if !r.ReceivedAt.IsZero() {
		received = r.ReceivedAt
	}
	body, err := json.Marshal(r)
	if err != nil {
		return "", false, fmt.Errorf("verification: submit: %w", err)
	}
	sealed, err := s.seal(body)
	if err != nil {
		return "", false, fmt.Errorf("verification: submit: seal: %w", err)
	}
	calls := s.plan(r)
	var deadline time.Duration
	for _, c := range calls {
		deadline = max(deadline, s.deadlineOf(c.partner))
	}
	db := s.deps.DB
	err = s.write(ctx, func() error {
		return db.InTx(ctx, func(tx *sql.Tx) error {
			err := tx.QueryRowContext(ctx, db.Rebind(`SELECT id FROM verif_requests WHERE origin = ? AND reference = ?`), r.Origin, r.Reference).Scan(&id)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			id, created = newID(now), true
			status := "open"
			if len(calls) == 0 {
				status = "final"
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO verif_requests (id, origin, reference, household, body, status, calls, created_ms, received_ms, deadline_ms, final_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), id, r.Origin, r.Reference, r.Household, sealed, status, len(calls), ms(now), ms(received),
				ms(now.Add(deadline)), map[bool]int64{true: ms(now), false: 0}[len(calls) == 0]); err != nil {
				return err
			}
			for _, c := range calls {
				key := id + ":" + c.partner
				if c.scope != "" {
					key += ":" + c.scope
				}
				if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO verif_calls (request_id, partner, scope, idem_key, state, next_ms, deadline_ms, created_ms)
				VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)`), id, c.partner, c.scope, key, ms(now), ms(now.Add(s.deadlineOf(c.partner))), ms(now)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return "", false, fmt.Errorf("verification: submit %s: %w", mask.Text(r.Reference), err)
	}
	if created {
		s.metrics.requests.Inc()
		s.emit(monitor.Event{Type: monitor.Received, Status: monitor.OK, Partner: originPartner(r.Origin), Flow: flowOf(r.Origin),
			Direction: monitor.Inbound, Channel: "http", ExchangeID: id, BusinessKey: id, PartnerRef: mask.Text(r.Reference), Records: int64(len(r.Members)),
			Attrs: map[string]string{"calls": fmt.Sprint(len(calls))}})
		for _, c := range calls {
			s.poke(c.partner)
		}
		s.signal()
	}
	return id, created, nil
}

func originPartner(origin string) string {
	if origin == "" {
		return "verification-centre"
	}
	return "ministry"
}

// Flows of the monitor events: the centre's households with the in-city
// partners, the questions to other provinces, and other provinces'
// requests answered from Shanghai's data.
const (
	FlowVerification    = "verification"
	FlowMinistryRequest = "ministry-request"
	FlowMinistryAnswer  = "ministry-answer"
)

// flowOf is the flow of a request's events.
func flowOf(origin string) string {
	if origin == "" {
		return FlowVerification
	}
	return FlowMinistryAnswer
}

// callFlow is the flow of a call's events.
func callFlow(partner, origin string) string {
	if origin == "" && partner == "ministry" {
		return FlowMinistryRequest
	}
	return flowOf(origin)
}

func (s *Service) poke(partner string) {
	if ch, ok := s.wake[partner]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *Service) emit(ev monitor.Event) {
	if s.deps.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = s.clock.Now()
	}
	ev.Component, ev.Node = "verification", s.deps.Node
	s.deps.Events.Emit(ev)
}

// loadRequest reads and opens a stored request.
func (s *Service) loadRequest(ctx context.Context, id string) (Request, requestRow, error) {
	var row requestRow
	var body []byte
	err := s.deps.DB.QueryRowContext(ctx, s.deps.DB.Rebind(`SELECT id, origin, reference, household, body, status, calls, created_ms, received_ms, deadline_ms, final_ms, returned_ms
		FROM verif_requests WHERE id = ?`), id).Scan(&row.ID, &row.Origin, &row.Reference, &row.Household, &body, &row.Status, &row.Calls,
		&row.CreatedMS, &row.ReceivedMS, &row.DeadlineMS, &row.FinalMS, &row.ReturnedMS)
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, row, fmt.Errorf("%w: request %s", ErrNotFound, id)
	}
	if err != nil {
		return Request{}, row, fmt.Errorf("verification: read request %s: %w", id, err)
	}
	plain, err := s.open(body)
	if err != nil {
		return Request{}, row, fmt.Errorf("verification: open request %s: %w", id, err)
	}
	var r Request
	if err := json.Unmarshal(plain, &r); err != nil {
		return Request{}, row, fmt.Errorf("verification: request %s: %w", id, err)
	}
	return r, row, nil
}

type requestRow struct {
	ID, Origin, Reference, Household, Status               string
	Calls                                                  int
	CreatedMS, ReceivedMS, DeadlineMS, FinalMS, ReturnedMS int64
}

func (s *Service) sample() bool {
	if s.cfg.SampleRate <= 0 {
		return false
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < s.cfg.SampleRate
}
