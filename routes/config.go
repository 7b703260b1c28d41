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
	// Timeout bounds one delivery (default 30s).
	Timeout time.Duration `yaml:"timeout"`
}

// Step is one processing step; exactly one of its fields is set.
type Step struct {
	// Name labels the step in events and errors (default its kind and index).
	Name string `yaml:"name"`
	// Map transforms the body.
	Map *MapStep `yaml:"map"`
	// Validate checks the body against rules.
	Validate *ValidateStep `yaml:"validate"`
	// Filter keeps messages for which an expression is true.
	Filter *FilterStep `yaml:"filter"`
	// Split turns one message into many (records of a file, items of an array).
	Split *SplitStep `yaml:"split"`
	// Aggregate collects messages by key until a count or a timeout (durable).
	Aggregate *AggregateStep `yaml:"aggregate"`
	// Dedupe drops messages whose key was already seen (durable ledger).
	Dedupe *DedupeStep `yaml:"dedupe"`
	// Enrich adds the answer of a cached lookup through a connector.
	Enrich *EnrichStep `yaml:"enrich"`
	// Switch selects the sinks by content.
	Switch *SwitchStep `yaml:"switch"`
}

// MapStep transforms the body: with a mapping file (the mapping engine), with
// a field map of expressions producing a JSON object, or with one expression.
type MapStep struct {
	// Mapping names a mapping of configs/mappings (e.g. banks/boc-disbursement).
	Mapping string `yaml:"mapping"`
	// Fields maps output JSON fields to expressions.
	Fields map[string]string `yaml:"fields"`
	// Body is an expression whose result (string, bytes, or a value encoded as JSON) becomes the body.
	Body string `yaml:"body"`
	// Headers sets headers to the results of expressions.
	Headers map[string]string `yaml:"headers"`
}

// ValidateStep checks rules; a message that fails is rejected.
type ValidateStep struct {
	// Rules are boolean expressions with the message shown when false.
	Rules []Rule `yaml:"rules"`
	// Required lists body fields that must be present and non-empty.
	Required []string `yaml:"required"`
	// OnFail is dead_letter (default) or drop.
	OnFail string `yaml:"on_fail"`
}

// Rule is one validation rule.
type Rule struct {
	// Expr must be true.
	Expr string `yaml:"expr"`
	// Message explains a failure.
	Message string `yaml:"message"`
}

// FilterStep keeps messages for which Expr is true and drops the others.
type FilterStep struct {
	// Expr is a boolean expression.
	Expr string `yaml:"expr"`
}

// SplitStep splits a message. Parts flow through the remaining steps one at
// a time, so a large file never sits whole in memory twice.
type SplitStep struct {
	// Lines splits the body into lines (a text file into records).
	Lines bool `yaml:"lines"`
	// SkipLines skips the first n lines (headers).
	SkipLines int `yaml:"skip_lines"`
	// SkipEmpty drops empty lines.
	SkipEmpty bool `yaml:"skip_empty"`
	// Items is an expression giving an array; each element becomes a JSON message.
	Items string `yaml:"items"`
}

// AggregateStep groups messages by key, durably, and completes a group when
// it holds Count messages or its first message is older than Timeout. The
// group continues as one message whose body is a JSON array of the parts.
type AggregateStep struct {
	// Key is an expression giving the group.
	Key string `yaml:"key"`
	// Count completes a group (0: timeout only).
	Count int `yaml:"count"`
	// Timeout completes a group after this long (0: count only).
	Timeout time.Duration `yaml:"timeout"`
}

// DedupeStep drops a message whose key was already seen by another message,
// using a durable ledger in the state store.
type DedupeStep struct {
	// Key is an expression giving the deduplication key.
	Key string `yaml:"key"`
	// TTL forgets keys older than this (0: forever).
	TTL time.Duration `yaml:"ttl"`
}

// EnrichStep asks a connector (a sink able to answer, e.g. http) and puts its
// answer (parsed as JSON when it is) under Target in the body. Answers are
// cached by the request expression's value.
type EnrichStep struct {
	// Via is the connector used for the lookup.
	Via Endpoint `yaml:"via"`
	// Request is an expression giving the request body (default: the body).
	Request string `yaml:"request"`
	// Target is the body field receiving the answer.
	Target string `yaml:"target"`
	// CacheTTL keeps answers this long (default 5m; 0s disables caching).
	CacheTTL *time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the cache entries (default 10000).
	CacheSize int `yaml:"cache_size"`
}

// SwitchStep selects sinks by content: the first case whose When is true
// gives the sinks; Default applies when none is.
type SwitchStep struct {
	// Cases are tried in order.
	Cases []Case `yaml:"cases"`
	// Default lists sink names used when no case matches (empty: drop).
	Default []string `yaml:"default"`
}

// Case is one branch of a switch.
type Case struct {
	// When is a boolean expression.
	When string `yaml:"when"`
	// To lists sink names.
	To []string `yaml:"to"`
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
func (s *Step) kind() string {
	var k []string
	if s.Map != nil {
		k = append(k, "map")
	}
	if s.Validate != nil {
		k = append(k, "validate")
	}
	if s.Filter != nil {
		k = append(k, "filter")
	}
	if s.Split != nil {
		k = append(k, "split")
	}
	if s.Aggregate != nil {
		k = append(k, "aggregate")
	}
	if s.Dedupe != nil {
		k = append(k, "dedupe")
	}
	if s.Enrich != nil {
		k = append(k, "enrich")
	}
	if s.Switch != nil {
		k = append(k, "switch")
	}
	if len(k) != 1 {
		return ""
	}
	return k[0]
}

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
