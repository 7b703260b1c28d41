package routes

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
)

// The engine's step kinds, registered in the order the reference lists
// them. Each kind is a config struct (its field comments are the docs)
// that checks itself within its route and builds the running step; the
// running steps are in steps.go and durable.go.
func init() {
	registerStep(StepSpec{Name: "map", Summary: "transforms the body: with a mapping of the mapping engine, a field map of expressions, or one expression; can set headers",
		NewConfig: func() any { return &MapStep{} }})
	registerStep(StepSpec{Name: "validate", Summary: "checks required body fields and rules; a message that fails is dead-lettered (or dropped)",
		NewConfig: func() any { return &ValidateStep{OnFail: onFailDeadLetter} }})
	registerStep(StepSpec{Name: "filter", Summary: "keeps the messages for which an expression is true and drops the others",
		NewConfig: func() any { return &FilterStep{} }})
	registerStep(StepSpec{Name: "split", Summary: "turns one message into many: the lines of the body or the elements of an array",
		NewConfig: func() any { return &SplitStep{} }})
	registerStep(StepSpec{Name: "aggregate", Summary: "groups messages by key, durably, until a count or a timeout; the group goes on as one message",
		NewConfig: func() any { return &AggregateStep{} }})
	registerStep(StepSpec{Name: "dedupe", Summary: "drops a message whose key another message already claimed (durable ledger)",
		NewConfig: func() any { return &DedupeStep{} }})
	registerStep(StepSpec{Name: "enrich", Summary: "asks a connector able to answer and puts the answer, cached, into the body",
		NewConfig: func() any { return &EnrichStep{CacheTTL: DefaultEnrichCacheTTL, CacheSize: DefaultEnrichCacheSize} }})
	registerStep(StepSpec{Name: "switch", Summary: "chooses the sinks by content: the first case whose condition holds",
		NewConfig: func() any { return &SwitchStep{} }})
}

// Defaults of the enrich step's cache.
const (
	DefaultEnrichCacheTTL  = 5 * time.Minute
	DefaultEnrichCacheSize = 10000
)

// stepCheck collects the problems of step i of a route; paths are
// relative to the step (e.g. "filter", "expr").
type stepCheck struct {
	rc *routeCheck
	i  int
}

func (c *stepCheck) path(rel []any) []any { return append([]any{"steps", c.i}, rel...) }

// problem reports msg at the node rel of the step as steps[i].<rel>: msg.
func (c *stepCheck) problem(rel []any, format string, a ...any) {
	c.rc.add(c.rc.at(c.path(rel)...), "%s: %s", pathString(c.path(rel)), fmt.Sprintf(format, a...))
}

// expr reports an expression of the step that does not compile.
func (c *stepCheck) expr(src, kind string, rel ...any) { c.rc.expr(src, kind, c.path(rel)...) }

// endpoint checks a connector endpoint of the step (enrich's via).
func (c *stepCheck) endpoint(role string, ep *Endpoint, rel ...any) {
	c.rc.endpoint(role, ep, pathString(c.path(rel)), c.path(rel)...)
}

// sinks reports names that are not sinks of the route.
func (c *stepCheck) sinks(names []string, rel ...any) {
	for _, n := range names {
		if !c.rc.sinkNames[n] {
			c.problem(rel, "unknown sink %q", n)
		}
	}
}

// stepBuild is what a step config needs to build its running step.
type stepBuild struct {
	e     *Engine
	rn    *runner
	index int
	name  string
	cdeps func(connector string) connectors.Deps
}

// expr compiles an expression of the step (nil for an empty one).
func (b *stepBuild) expr(src, kind string) (*program, error) {
	if src == "" {
		return nil, nil
	}
	return compileExpr(src, kind)
}

func (b *stepBuild) vars() map[string]string { return b.rn.r.Vars }

// ---- map ----

// MapStep transforms the body: with a mapping file (the mapping engine), with
// a field map of expressions producing a JSON object, or with one expression.
type MapStep struct {
	// Mapping names a mapping of configs/mappings (e.g. banks/boc-disbursement); a file with rejected records or a wrong trailer is dead-lettered whole.
	Mapping string `yaml:"mapping"`
	// Fields maps output JSON fields to expressions.
	Fields map[string]string `yaml:"fields"`
	// Body is an expression whose result (string, bytes, or a value encoded as JSON) becomes the body.
	Body string `yaml:"body"`
	// Headers sets headers to the results of expressions.
	Headers map[string]string `yaml:"headers"`
}

func (m *MapStep) check(c *stepCheck) {
	n := 0
	for _, set := range []bool{m.Mapping != "", len(m.Fields) > 0, m.Body != ""} {
		if set {
			n++
		}
	}
	if n != 1 && !(n == 0 && len(m.Headers) > 0) {
		c.problem([]any{"map"}, "exactly one of mapping, fields, body is required")
	}
	for f, e := range m.Fields {
		c.expr(e, "any", "map", "fields", f)
	}
	c.expr(m.Body, "any", "map", "body")
	for h, e := range m.Headers {
		c.expr(e, "string", "map", "headers", h)
	}
}

func (m *MapStep) build(b *stepBuild) (step, error) {
	ms := &mapStep{n: b.name, mapping: m.Mapping, mapper: b.e.deps.Mapper, vars: b.vars()}
	if ms.mapping != "" && ms.mapper == nil {
		return nil, fmt.Errorf("map: mapping %q needs the mapping engine, which is not wired", ms.mapping)
	}
	var err error
	if ms.fields, err = compileFields(b, m.Fields, "any"); err != nil {
		return nil, err
	}
	if ms.headers, err = compileFields(b, m.Headers, "string"); err != nil {
		return nil, err
	}
	if ms.body, err = b.expr(m.Body, "any"); err != nil {
		return nil, err
	}
	return ms, nil
}

// compileFields compiles a map of expressions in the order of its keys.
func compileFields(b *stepBuild, exprs map[string]string, kind string) ([]fieldProg, error) {
	names := make([]string, 0, len(exprs))
	for k := range exprs {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []fieldProg
	for _, k := range names {
		p, err := b.expr(exprs[k], kind)
		if err != nil {
			return nil, err
		}
		out = append(out, fieldProg{k, p})
	}
	return out, nil
}

// ---- validate ----

// What a validate step does with a message that fails.
const (
	onFailDeadLetter = "dead_letter"
	onFailDrop       = "drop"
)

// ValidateStep checks rules; a message that fails is rejected.
type ValidateStep struct {
	// Rules are boolean expressions with the message shown when false.
	Rules []Rule `yaml:"rules"`
	// Required lists body fields that must be present and non-empty.
	Required []string `yaml:"required"`
	// OnFail is dead_letter or drop.
	OnFail string `yaml:"on_fail"`
}

// Rule is one validation rule.
type Rule struct {
	// Expr must be true.
	Expr string `yaml:"expr"`
	// Message explains a failure.
	Message string `yaml:"message"`
}

func (v *ValidateStep) check(c *stepCheck) {
	if len(v.Rules) == 0 && len(v.Required) == 0 {
		c.problem([]any{"validate"}, "rules or required is needed")
	}
	for j, rule := range v.Rules {
		if rule.Expr == "" {
			c.problem([]any{"validate", "rules", j}, "expr is required")
		}
		c.expr(rule.Expr, "bool", "validate", "rules", j, "expr")
	}
	switch v.OnFail {
	case "", onFailDeadLetter, onFailDrop:
	default:
		c.problem([]any{"validate", "on_fail"}, "%q is not dead_letter or drop", v.OnFail)
	}
}

func (v *ValidateStep) build(b *stepBuild) (step, error) {
	vs := &validateStep{n: b.name, required: v.Required, drop: v.OnFail == onFailDrop, vars: b.vars()}
	for _, rule := range v.Rules {
		p, err := b.expr(rule.Expr, "bool")
		if err != nil {
			return nil, err
		}
		vs.rules = append(vs.rules, p)
		vs.messages = append(vs.messages, rule.Message)
	}
	return vs, nil
}

// ---- filter ----

// FilterStep keeps messages for which Expr is true and drops the others.
type FilterStep struct {
	// Expr is a boolean expression.
	Expr string `yaml:"expr"`
}

func (f *FilterStep) check(c *stepCheck) {
	if f.Expr == "" {
		c.problem([]any{"filter"}, "expr is required")
	}
	c.expr(f.Expr, "bool", "filter", "expr")
}

func (f *FilterStep) build(b *stepBuild) (step, error) {
	p, err := b.expr(f.Expr, "bool")
	if err != nil {
		return nil, err
	}
	return &filterStep{n: b.name, p: p, vars: b.vars()}, nil
}

// ---- split ----

// SplitStep splits a message. Parts flow through the remaining steps one at
// a time, so a large file never sits whole in memory twice; part n has the
// idempotency key <key>#<n>.
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

func (sp *SplitStep) check(c *stepCheck) {
	if sp.Lines == (sp.Items != "") {
		c.problem([]any{"split"}, "exactly one of lines: true or items is required")
	}
	if sp.SkipLines < 0 {
		c.problem([]any{"split", "skip_lines"}, "must not be negative")
	}
	c.expr(sp.Items, "any", "split", "items")
}

func (sp *SplitStep) build(b *stepBuild) (step, error) {
	p, err := b.expr(sp.Items, "any")
	if err != nil {
		return nil, err
	}
	return &splitStep{n: b.name, lines: sp.Lines, skip: sp.SkipLines, skipEmpty: sp.SkipEmpty, items: p, vars: b.vars()}, nil
}

// ---- aggregate ----

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

func (a *AggregateStep) check(c *stepCheck) {
	if a.Key == "" {
		c.problem([]any{"aggregate"}, "key is required")
	}
	c.expr(a.Key, "string", "aggregate", "key")
	if a.Count <= 0 && a.Timeout <= 0 {
		c.problem([]any{"aggregate"}, "count or timeout is required")
	}
	if a.Count < 0 || a.Timeout < 0 {
		c.problem([]any{"aggregate"}, "count and timeout must not be negative")
	}
}

func (a *AggregateStep) build(b *stepBuild) (step, error) {
	p, err := b.expr(a.Key, "string")
	if err != nil {
		return nil, err
	}
	e, rn := b.e, b.rn
	st := &aggregateStep{n: b.name, index: b.index, route: rn.r.ID, key: p, count: a.Count, timeout: a.Timeout,
		db: e.deps.Store, now: e.clock.Now, vars: b.vars()}
	st.publish = func(ctx context.Context, msg bus.Message) error {
		return e.deps.Bus.Publish(ctx, rn.topic, msg)
	}
	return st, nil
}

// ---- dedupe ----

// DedupeStep drops a message whose key was already seen by another message,
// using a durable ledger in the state store; the same message redelivered
// passes.
type DedupeStep struct {
	// Key is an expression giving the deduplication key.
	Key string `yaml:"key"`
	// TTL forgets keys older than this (0: forever).
	TTL time.Duration `yaml:"ttl"`
}

func (d *DedupeStep) check(c *stepCheck) {
	if d.Key == "" {
		c.problem([]any{"dedupe"}, "key is required")
	}
	c.expr(d.Key, "string", "dedupe", "key")
	if d.TTL < 0 {
		c.problem([]any{"dedupe", "ttl"}, "must not be negative")
	}
}

func (d *DedupeStep) build(b *stepBuild) (step, error) {
	p, err := b.expr(d.Key, "string")
	if err != nil {
		return nil, err
	}
	return &dedupeStep{n: b.name, route: b.rn.r.ID, key: p, ttl: d.TTL, db: b.e.deps.Store, now: b.e.clock.Now, vars: b.vars()}, nil
}

// ---- enrich ----

// EnrichStep asks a connector (a sink able to answer, e.g. http) and puts its
// answer (parsed as JSON when it is) under Target in the body. Answers are
// cached by the request expression's value.
type EnrichStep struct {
	// Via is the connector used for the lookup (its sink config).
	Via Endpoint `yaml:"via"`
	// Request is an expression giving the request body (default: the body).
	Request string `yaml:"request"`
	// Target is the body field receiving the answer.
	Target string `yaml:"target"`
	// CacheTTL keeps answers this long (0s disables caching).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the cache entries.
	CacheSize int `yaml:"cache_size"`
}

func (en *EnrichStep) check(c *stepCheck) {
	if en.Target == "" {
		c.problem([]any{"enrich"}, "target is required")
	}
	c.expr(en.Request, "any", "enrich", "request")
	if en.Via.Kind == "" {
		c.problem([]any{"enrich", "via"}, "kind is required")
	} else {
		c.endpoint(roleLookup, &en.Via, "enrich", "via")
	}
	if en.CacheTTL < 0 {
		c.problem([]any{"enrich", "cache_ttl"}, "must not be negative")
	}
}

func (en *EnrichStep) build(b *stepBuild) (step, error) {
	cfg, _, err := decodeEndpoint(b.e.deps.Connectors, roleLookup, &en.Via)
	if err != nil {
		return nil, err
	}
	spec, err := lookupKind(b.e.deps.Connectors, en.Via.Kind)
	if err != nil {
		return nil, err
	}
	if spec.Sink == nil || spec.Sink.New == nil {
		return nil, fmt.Errorf("enrich: connector %q cannot answer requests", en.Via.Kind)
	}
	sink, err := spec.Sink.New(cfg, b.cdeps(en.Via.Kind))
	if err != nil {
		return nil, err
	}
	req, ok := sink.(Requester)
	if !ok {
		return nil, fmt.Errorf("enrich: connector %q cannot answer requests", en.Via.Kind)
	}
	p, err := b.expr(en.Request, "any")
	if err != nil {
		return nil, err
	}
	size := en.CacheSize
	if size <= 0 {
		size = DefaultEnrichCacheSize
	}
	return &enrichStep{n: b.name, via: req, request: p, target: en.Target, ttl: en.CacheTTL, size: size,
		vars: b.vars(), now: b.e.clock.Now, cache: map[string]cacheEntry{}}, nil
}

// ---- switch ----

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

func (sw *SwitchStep) check(c *stepCheck) {
	if len(sw.Cases) == 0 {
		c.problem([]any{"switch"}, "cases are required")
	}
	for j, cs := range sw.Cases {
		if cs.When == "" {
			c.problem([]any{"switch", "cases", j}, "when is required")
		}
		c.expr(cs.When, "bool", "switch", "cases", j, "when")
		c.sinks(cs.To, "switch", "cases", j, "to")
	}
	c.sinks(sw.Default, "switch", "default")
}

func (sw *SwitchStep) build(b *stepBuild) (step, error) {
	st := &switchStep{n: b.name, deflt: sw.Default, vars: b.vars()}
	for _, cs := range sw.Cases {
		p, err := b.expr(cs.When, "bool")
		if err != nil {
			return nil, err
		}
		st.when = append(st.when, p)
		st.to = append(st.to, cs.To)
	}
	return st, nil
}
