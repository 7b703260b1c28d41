package routes

import (
	"errors"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Route is one route file (or one instance of a template).
type Route struct {
	// ID names the route; unique across configs/routes. Lowercase letters, digits, '-', '.' and '_'.
	ID string `yaml:"id"`
	// Description says what the route is for, in one sentence.
	Description string `yaml:"description"`
	// Partner is the partner id the route exchanges with (e.g. "bank.boc"), used in events.
	Partner string `yaml:"partner"`
	// Flow is the business flow (e.g. "disbursement"), used in events.
	Flow string `yaml:"flow"`
	// From is the source of the route's messages.
	From Endpoint `yaml:"from"`
	// Steps run in order on every message taken from the bus.
	Steps []Step `yaml:"steps"`
	// To lists the sinks; every message that reaches the end of the steps is
	// delivered to each of them (or to those a switch step selected).
	To []Endpoint `yaml:"to"`
	// Errors is the retry and dead-letter policy.
	Errors ErrorPolicy `yaml:"errors"`
	// Key is an expression giving the ordering key (messages with one key are
	// handled in order). Empty means unordered.
	Key string `yaml:"key"`
	// IdempotencyKey is an expression giving the business identity of a
	// message; the delivery ledger and dedupe use it. Default: the source's
	// key, else a SHA-256 digest of the body.
	IdempotencyKey string `yaml:"idempotency_key"`
	// RateLimit caps deliveries to the sinks.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// Concurrency is the number of messages handled at once (default 16).
	Concurrency int `yaml:"concurrency"`
	// MaxBacklog bounds the messages published but not yet handled; emit
	// blocks beyond it, so a slow sink slows the source (default 10000).
	MaxBacklog int `yaml:"max_backlog"`
	// Vars are constants available to expressions as vars.<name>.
	Vars map[string]string `yaml:"vars"`
	// ReplyTo is a bus topic for the answers of a request/answer partner (a query, a lookup): the route's one sink answers each message (its kind implements routes.Replier) and the engine publishes the answer there as part of settling the delivery, with the idempotency key of the request plus "/reply" (see docs/routes.md, "Request and answer"). A message dead-lettered publishes a failure answer ("/failed") there instead. Empty: the route has no answers.
	ReplyTo string `yaml:"reply_to"`

	// file and origin are set by the loader (not YAML).
	file   string
	origin string
	root   *yaml.Node
}

// File returns the file the route was loaded from.
func (r *Route) File() string { return r.file }

// Endpoint is a source or sink: a connector kind and its configuration.
type Endpoint struct {
	// Name labels a sink (switch cases and test mocks refer to it); default the kind, then kind-N.
	Name string `yaml:"name"`
	// Kind is the connector kind (http, sftp, schedule, bus, ...).
	Kind string `yaml:"kind"`
	// Config is the connector's configuration, decoded strictly into the kind's config type.
	Config yaml.Node `yaml:"config"`
	// Idempotent declares that the partner itself ignores a repeated
	// idempotency key; the ledger then never parks a delivery as in doubt.
	Idempotent bool `yaml:"idempotent"`
	// ResendInDoubt lets a delivery in doubt (a send that timed out, was cancelled or lost its connection after the request was written) be sent again when the sink cannot be asked whether it arrived (no status endpoint). Default false: it is dead-lettered as in doubt. Only for partners where a second copy does no harm.
	ResendInDoubt bool `yaml:"resend_in_doubt"`
	// Timeout bounds one delivery (default 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// Step is one processing step: an optional name and one key naming a
// registered step kind (map, validate, filter, ...) whose value is the
// kind's configuration (see StepSpecs and the generated reference in
// docs/routes.md).
type Step struct {
	// Name labels the step in events and errors (default its kind and index).
	Name string `yaml:"name"`
	// Kind is the step kind: the key that named it in the file.
	Kind string `yaml:"-"`
	// Config is the kind's decoded configuration (*MapStep, *FilterStep, ...).
	Config any `yaml:"-"`

	// kinds lists every step kind key found (validation reports none or several).
	kinds []string
}

// ErrorPolicy is a route's retry and dead-letter policy.
type ErrorPolicy struct {
	// MaxAttempts before dead-lettering (default 8).
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the first retry delay (default 1s); it doubles per attempt.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps the delay (default 5m).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Jitter is the random fraction added or removed from a delay, 0..1 (default 0.2).
	Jitter *float64 `yaml:"jitter"`
	// DeadLetter: true (default) keeps failed messages for replay; false drops them after the last attempt.
	DeadLetter *bool `yaml:"dead_letter"`
}

// RateLimit caps the rate of deliveries.
type RateLimit struct {
	// PerSecond is the sustained rate.
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket size (default: max(1, PerSecond)).
	Burst int `yaml:"burst"`
}

// Defaults of a route.
const (
	DefaultConcurrency = 16
	DefaultMaxBacklog  = 10000
	DefaultMaxAttempts = 8
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultJitter      = 0.2
	DefaultSinkTimeout = 30 * time.Second
)

// withDefaults fills the defaults in place.
func (r *Route) withDefaults() {
	if r.Concurrency == 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.MaxBacklog == 0 {
		r.MaxBacklog = DefaultMaxBacklog
	}
	e := &r.Errors
	if e.MaxAttempts == 0 {
		e.MaxAttempts = DefaultMaxAttempts
	}
	if e.Backoff == 0 {
		e.Backoff = DefaultBackoff
	}
	if e.MaxBackoff == 0 {
		e.MaxBackoff = DefaultMaxBackoff
	}
	if e.Jitter == nil {
		j := DefaultJitter
		e.Jitter = &j
	}
	if e.DeadLetter == nil {
		t := true
		e.DeadLetter = &t
	}
	seen := map[string]int{}
	for i := range r.To {
		t := &r.To[i]
		if t.Timeout == 0 {
			t.Timeout = DefaultSinkTimeout
		}
		if t.Name == "" {
			t.Name = t.Kind
			if n := seen[t.Kind]; n > 0 {
				t.Name = fmt.Sprintf("%s-%d", t.Kind, n+1)
			}
			seen[t.Kind]++
		}
	}
	for i := range r.Steps {
		s := &r.Steps[i]
		if s.Name == "" {
			s.Name = fmt.Sprintf("%s-%d", s.kind(), i+1)
		}
	}
}

// kind names the step's kind ("" when none or several are set).
func (s *Step) kind() string { return s.Kind }

// Topic is the bus topic a route's source publishes to.
func (r *Route) Topic() string { return "route." + r.ID }

// Problem is one validation problem at a place of a route file.
type Problem struct {
	// Path locates the problem in the YAML (e.g. steps[2].filter.expr).
	Path string
	// Line is the 1-based line in File (0 when unknown).
	Line int
	// Message says what is wrong.
	Message string
}

// ValidationError lists every problem of a route.
type ValidationError struct {
	// File and Route identify the route.
	File, Route string
	// Problems found, in file order.
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var errs []error
	for _, p := range e.Problems {
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", e.File, p.Line, p.Path, p.Message))
	}
	return errors.Join(errs...).Error()
}

// Unwrap lets errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }
