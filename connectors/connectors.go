package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

// Message is what sources emit and sinks deliver; it is the bus message.
type Message = bus.Message

// Emit hands messages from a source to the hub. It returns nil only once the
// messages are durably on the bus (or fully delivered); only then may the
// source acknowledge its partner (move the file, ack the request, ...).
type Emit func(ctx context.Context, msgs ...Message) error

// Source brings data in from a partner.
type Source interface {
	// Run polls or listens until ctx is done, calling emit for what arrives.
	// It acknowledges its partner only after emit returned nil, so a crash
	// between the two leads to redelivery, never loss. Run returns nil when
	// ctx is done and an error only for a fault it cannot recover from.
	Run(ctx context.Context, emit Emit) error
}

// Sink delivers data out to a partner.
type Sink interface {
	// Send delivers msg. It must be idempotent on msg.IdempotencyKey (use the
	// partner's idempotent key or the hub's delivery ledger): the hub may call
	// it again for the same message after a crash or a retry. Wrap errors that
	// retrying cannot fix with Permanent, a failure whose outcome is unknown
	// (the request left, no answer came) with InDoubt and one before anything
	// left with NotSent; a context error that is neither counts as in doubt.
	Send(ctx context.Context, msg Message) error
}

// Events receives exchange events; the monitor's writer implements it.
// Emit never blocks or fails the caller.
type Events interface {
	Emit(ev monitor.Event)
}

// Deps is what the hub hands to every connector.
type Deps struct {
	// Logger is already scoped to the connector (logger.With("connector", name)).
	Logger *slog.Logger
	// Metrics is the registerer of the hub's own registry (never the global one).
	Metrics prometheus.Registerer
	// Store is the state database.
	Store *store.DB
	// Clock tells the time; tests use a fake.
	Clock clock.Clock
	// Events receives monitor events.
	Events Events
	// DataDir is a directory the connector may use for local files.
	DataDir string
	// Partners holds partner clients the hub built from its own
	// configuration, for kinds whose endpoints and credentials live there
	// rather than in the route file (the verification partners look theirs
	// up through household.Clients); nil when the hub has none.
	Partners any
	// Partner is the partner id of the route the connector serves (the
	// route's partner:, empty when it names none): clients report their
	// circuit breaker's changes as this partner's events.
	Partner string
}

// Spec describes a connector kind; each kind registers one in init with
// Register. Route steps register the same shape (routes.StepSpec): a name,
// a one-line summary and, for each role, a config type whose defaults,
// field types and field doc comments drive strict decoding, `mzhub lint`
// and the generated reference in docs/routes.md.
type Spec struct {
	// Name is the kind used in route files (e.g. "http", "sftp").
	Name string
	// Summary is one line for docs.
	Summary string
	// Source is the kind's source role; nil when the kind has none.
	Source *SourceSpec
	// Sink is the kind's sink role (also used by enrich lookups); nil when
	// the kind has none.
	Sink *SinkSpec
}

// SourceSpec is the source role of a connector kind.
type SourceSpec struct {
	// NewConfig returns a pointer to a config struct with the defaults
	// filled in. The route engine decodes the endpoint's YAML into it
	// strictly (an unknown key is an error with its line) and calls its
	// Validate() error method, when it has one, before New.
	NewConfig func() any
	// New builds a source from a decoded, validated config.
	New func(cfg any, deps Deps) (Source, error)
}

// SinkSpec is the sink role of a connector kind; see SourceSpec.
type SinkSpec struct {
	// NewConfig returns a pointer to a config struct with the defaults
	// filled in, decoded and validated as SourceSpec.NewConfig.
	NewConfig func() any
	// New builds a sink from a decoded, validated config.
	New func(cfg any, deps Deps) (Sink, error)
}

// Registry maps connector kind names to specs.
type Registry struct {
	mu    sync.RWMutex
	specs map[string]Spec
}

// NewRegistry returns an empty registry. Tests build their own.
func NewRegistry() *Registry { return &Registry{specs: map[string]Spec{}} }

// Register adds a spec; a duplicate or empty name, a spec with no role
// or a role without NewConfig or New is an error.
func (r *Registry) Register(s Spec) error {
	if s.Name == "" {
		return ErrNoName
	}
	switch {
	case s.Source == nil && s.Sink == nil:
		return fmt.Errorf("connectors: %q: %w: neither source nor sink", s.Name, ErrIncomplete)
	case s.Source != nil && (s.Source.NewConfig == nil || s.Source.New == nil):
		return fmt.Errorf("connectors: %q: %w: source without NewConfig or New", s.Name, ErrIncomplete)
	case s.Sink != nil && (s.Sink.NewConfig == nil || s.Sink.New == nil):
		return fmt.Errorf("connectors: %q: %w: sink without NewConfig or New", s.Name, ErrIncomplete)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.specs[s.Name]; dup {
		return fmt.Errorf("connectors: %q: %w", s.Name, ErrDuplicate)
	}
	r.specs[s.Name] = s
	return nil
}

// Lookup returns the spec of a kind.
func (r *Registry) Lookup(name string) (Spec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.specs[name]
	if !ok {
		return Spec{}, fmt.Errorf("connectors: %q: %w", name, ErrUnknown)
	}
	return s, nil
}

// Names lists the registered kinds, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.specs))
	for n := range r.specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// builtin is the init-time registry of built-in connectors.
var builtin = NewRegistry()

// Register adds a built-in connector kind. It is called from init; a
// duplicate name is a programmer error and panics at start-up.
func Register(s Spec) {
	if err := builtin.Register(s); err != nil {
		panic(err)
	}
}

// Builtin returns the registry of built-in connectors.
func Builtin() *Registry { return builtin }

// Sentinel errors of the registry and of sinks.
var (
	ErrDuplicate = errors.New("duplicate connector name")
	ErrUnknown   = errors.New("unknown connector kind")
	ErrNoName    = errors.New("connectors: spec without a name")
	// ErrIncomplete is returned by Register for a spec missing a role or
	// a role's NewConfig or New.
	ErrIncomplete = errors.New("incomplete connector spec")
	// ErrPermanent marks an error that retrying cannot fix (bad request,
	// rejected record); routes dead-letter it without further attempts.
	ErrPermanent = errors.New("permanent failure")
	// ErrInDoubt marks a send whose outcome is unknown: the request left
	// (it was written, in part or whole) and no answer came back (a
	// timeout, a cancelled call, a connection lost). The partner may have
	// the message; routes never send it again blindly but ask the partner's
	// status first (see routes.DeliveryChecker).
	ErrInDoubt = errors.New("in doubt")
	// ErrNotSent marks a failure before anything reached the partner (a
	// dial error, a circuit breaker or rate limit refusing the call): a
	// retry cannot duplicate it.
	ErrNotSent = errors.New("not sent")
)

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// InDoubt wraps err so that errors.Is(err, ErrInDoubt) holds.
func InDoubt(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInDoubt, err)
}

// NotSent wraps err so that errors.Is(err, ErrNotSent) holds.
func NotSent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrNotSent, err)
}
