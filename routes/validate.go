package routes

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/connectors"
)

// kindChecker checks an endpoint's kind and configuration.
type kindChecker interface {
	checkEndpoint(role string, ep *Endpoint) (line int, err error)
}

// registryChecker checks endpoints against a connector registry plus the
// engine's own kinds (bus, schedule).
type registryChecker struct{ reg *connectors.Registry }

func lintRegistry() kindChecker { return registryChecker{connectors.Builtin()} }

// Roles of an endpoint.
const (
	roleSource = "source"
	roleSink   = "sink"
	roleLookup = "lookup"
)

func (c registryChecker) checkEndpoint(role string, ep *Endpoint) (int, error) {
	_, line, err := decodeEndpoint(c.reg, role, ep)
	return line, err
}

// decodeEndpoint decodes ep.Config strictly into the kind's configuration
// and validates it. It returns the decoded config (nil for built-in kinds
// whose config is returned by their own decoder).
func decodeEndpoint(reg *connectors.Registry, role string, ep *Endpoint) (any, int, error) {
	line := ep.Config.Line
	switch ep.Kind {
	case "":
		return nil, line, fmt.Errorf("kind is required")
	case kindBus:
		var c BusEndpointConfig
		if err := decodeNode(&ep.Config, &c); err != nil {
			return nil, line, err
		}
		return &c, line, c.Validate()
	case kindSchedule:
		if role != roleSource {
			return nil, line, fmt.Errorf("kind schedule is a source only")
		}
		var c ScheduleConfig
		if err := decodeNode(&ep.Config, &c); err != nil {
			return nil, line, err
		}
		return &c, line, c.Validate()
	}
	spec, err := reg.Lookup(ep.Kind)
	if err != nil {
		return nil, line, fmt.Errorf("kind %q: unknown connector (known: %v, bus, schedule)", ep.Kind, reg.Names())
	}
	switch role {
	case roleSource:
		if spec.NewSource == nil {
			return nil, line, fmt.Errorf("connector %q has no source", ep.Kind)
		}
	default:
		if spec.NewSink == nil {
			return nil, line, fmt.Errorf("connector %q has no sink", ep.Kind)
		}
	}
	if spec.NewConfig == nil {
		return nil, line, nil
	}
	cfg := spec.NewConfig()
	if err := decodeNode(&ep.Config, cfg); err != nil {
		return nil, line, err
	}
	// A kind with both roles may validate each role's part on its own
	// (ValidateSource, ValidateSink); otherwise Validate checks the config.
	vsrc, hasSrc := cfg.(interface{ ValidateSource() error })
	vsink, hasSink := cfg.(interface{ ValidateSink() error })
	switch {
	case hasSrc && role == roleSource:
		if err := vsrc.ValidateSource(); err != nil {
			return nil, line, err
		}
	case hasSink && role != roleSource:
		if err := vsink.ValidateSink(); err != nil {
			return nil, line, err
		}
	}
	if v, ok := cfg.(interface{ Validate() error }); ok && !hasSrc && !hasSink {
		if err := v.Validate(); err != nil {
			return nil, line, err
		}
	}
	return cfg, line, nil
}

// decodeNode decodes a YAML subtree strictly (unknown keys are errors).
func decodeNode(n *yaml.Node, out any) error {
	if n.Kind == 0 {
		return nil
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	if err := strictDecode(b, out); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

var routeID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// Validate checks the route without connectors (structure and
// expressions) and reports every problem; it does no I/O.
func (r *Route) Validate() error {
	errs := validateRoute(r, nil)
	if errs == nil {
		return nil
	}
	ve := &ValidationError{File: r.file, Route: r.ID}
	for _, e := range errs {
		ve.Problems = append(ve.Problems, Problem{Line: e.Line, Message: e.Message})
	}
	return ve
}

// validateRoute returns every problem of r; reg may be nil to skip connector checks.
func validateRoute(r *Route, reg kindChecker) []LintError {
	var errs []LintError
	add := func(line int, format string, a ...any) {
		errs = append(errs, LintError{File: r.file, Line: line, Message: fmt.Sprintf(format, a...)})
	}
	at := func(path ...any) int { return nodeLine(r.root, path...) }
	if !routeID.MatchString(r.ID) {
		add(at("id"), "id: %q must be 1-100 of a-z, 0-9, '.', '_', '-' starting with a letter or digit", r.ID)
	}
	checkExpr := func(src, kind string, path ...any) {
		if src == "" {
			return
		}
		if _, err := compileExpr(src, kind); err != nil {
			add(at(path...), "%s: expression: %v", pathString(path), oneLine(err.Error()))
		}
	}
	checkExpr(r.Key, "string", "key")
	checkExpr(r.IdempotencyKey, "string", "idempotency_key")
	if r.Concurrency < 0 || r.Concurrency > 1024 {
		add(at("concurrency"), "concurrency: %d out of 1..1024", r.Concurrency)
	}
	if r.MaxBacklog < 0 {
		add(at("max_backlog"), "max_backlog: must not be negative")
	}
	// Source.
	if r.From.Kind == "" {
		add(at("from"), "from: kind is required")
	} else if reg != nil {
		if line, err := reg.checkEndpoint(roleSource, &r.From); err != nil {
			add(firstLine(line, at("from")), "from (%s): %v", r.From.Kind, oneLine(err.Error()))
		}
	}
	// Sinks.
	if len(r.To) == 0 {
		add(at("to"), "to: at least one sink is required")
	}
	names := map[string]bool{}
	for i := range r.To {
		t := &r.To[i]
		name := t.Name
		if name == "" {
			name = t.Kind
		}
		if names[name] && t.Name != "" {
			add(at("to", i, "name"), "to[%d]: duplicate sink name %q", i, name)
		}
		names[name] = true
		if t.Kind == "" {
			add(at("to", i), "to[%d]: kind is required", i)
			continue
		}
		if t.Timeout < 0 {
			add(at("to", i, "timeout"), "to[%d].timeout: must not be negative", i)
		}
		if reg != nil {
			if line, err := reg.checkEndpoint(roleSink, t); err != nil {
				add(firstLine(line, at("to", i)), "to[%d] (%s): %v", i, t.Kind, oneLine(err.Error()))
			}
		}
	}
	// Names the switch may use: given names, or kinds (and kind-N) by default.
	sinkNames := map[string]bool{}
	{
		tmp := *r
		tmp.To = append([]Endpoint(nil), r.To...)
		tmp.Steps = append([]Step(nil), r.Steps...)
		tmp.withDefaults()
		for _, t := range tmp.To {
			sinkNames[t.Name] = true
		}
	}
	// Steps.
	for i := range r.Steps {
		s := &r.Steps[i]
		p := func(rest ...any) []any { return append([]any{"steps", i}, rest...) }
		k := s.kind()
		if k == "" {
			add(at(p()...), "steps[%d]: exactly one of map, validate, filter, split, aggregate, dedupe, enrich, switch is required", i)
			continue
		}
		switch k {
		case "map":
			m := s.Map
			n := 0
			for _, set := range []bool{m.Mapping != "", len(m.Fields) > 0, m.Body != ""} {
				if set {
					n++
				}
			}
			if n != 1 && !(n == 0 && len(m.Headers) > 0) {
				add(at(p("map")...), "steps[%d].map: exactly one of mapping, fields, body is required", i)
			}
			for f, e := range m.Fields {
				checkExpr(e, "any", p("map", "fields", f)...)
			}
			checkExpr(m.Body, "any", p("map", "body")...)
			for h, e := range m.Headers {
				checkExpr(e, "string", p("map", "headers", h)...)
			}
		case "validate":
			v := s.Validate
			if len(v.Rules) == 0 && len(v.Required) == 0 {
				add(at(p("validate")...), "steps[%d].validate: rules or required is needed", i)
			}
			for j, rule := range v.Rules {
				if rule.Expr == "" {
					add(at(p("validate", "rules", j)...), "steps[%d].validate.rules[%d]: expr is required", i, j)
				}
				checkExpr(rule.Expr, "bool", p("validate", "rules", j, "expr")...)
			}
			switch v.OnFail {
			case "", "dead_letter", "drop":
			default:
				add(at(p("validate", "on_fail")...), "steps[%d].validate.on_fail: %q is not dead_letter or drop", i, v.OnFail)
			}
		case "filter":
			if s.Filter.Expr == "" {
				add(at(p("filter")...), "steps[%d].filter: expr is required", i)
			}
			checkExpr(s.Filter.Expr, "bool", p("filter", "expr")...)
		case "split":
			sp := s.Split
			if sp.Lines == (sp.Items != "") {
				add(at(p("split")...), "steps[%d].split: exactly one of lines: true or items is required", i)
			}
			if sp.SkipLines < 0 {
				add(at(p("split", "skip_lines")...), "steps[%d].split.skip_lines: must not be negative", i)
			}
			checkExpr(sp.Items, "any", p("split", "items")...)
		case "aggregate":
			a := s.Aggregate
			if a.Key == "" {
				add(at(p("aggregate")...), "steps[%d].aggregate: key is required", i)
			}
			checkExpr(a.Key, "string", p("aggregate", "key")...)
			if a.Count <= 0 && a.Timeout <= 0 {
				add(at(p("aggregate")...), "steps[%d].aggregate: count or timeout is required", i)
			}
			if a.Count < 0 || a.Timeout < 0 {
				add(at(p("aggregate")...), "steps[%d].aggregate: count and timeout must not be negative", i)
			}
		case "dedupe":
			if s.Dedupe.Key == "" {
				add(at(p("dedupe")...), "steps[%d].dedupe: key is required", i)
			}
			checkExpr(s.Dedupe.Key, "string", p("dedupe", "key")...)
			if s.Dedupe.TTL < 0 {
				add(at(p("dedupe", "ttl")...), "steps[%d].dedupe.ttl: must not be negative", i)
			}
		case "enrich":
			e := s.Enrich
			if e.Target == "" {
				add(at(p("enrich")...), "steps[%d].enrich: target is required", i)
			}
			checkExpr(e.Request, "any", p("enrich", "request")...)
			if e.Via.Kind == "" {
				add(at(p("enrich", "via")...), "steps[%d].enrich.via: kind is required", i)
			} else if reg != nil {
				if line, err := reg.checkEndpoint(roleLookup, &e.Via); err != nil {
					add(firstLine(line, at(p("enrich", "via")...)), "steps[%d].enrich.via (%s): %v", i, e.Via.Kind, oneLine(err.Error()))
				}
			}
			if e.CacheTTL != nil && *e.CacheTTL < 0 {
				add(at(p("enrich", "cache_ttl")...), "steps[%d].enrich.cache_ttl: must not be negative", i)
			}
		case "switch":
			sw := s.Switch
			if len(sw.Cases) == 0 {
				add(at(p("switch")...), "steps[%d].switch: cases are required", i)
			}
			for j, c := range sw.Cases {
				if c.When == "" {
					add(at(p("switch", "cases", j)...), "steps[%d].switch.cases[%d]: when is required", i, j)
				}
				checkExpr(c.When, "bool", p("switch", "cases", j, "when")...)
				for _, n := range c.To {
					if !sinkNames[n] {
						add(at(p("switch", "cases", j, "to")...), "steps[%d].switch.cases[%d]: unknown sink %q", i, j, n)
					}
				}
			}
			for _, n := range sw.Default {
				if !sinkNames[n] {
					add(at(p("switch", "default")...), "steps[%d].switch.default: unknown sink %q", i, n)
				}
			}
		}
	}
	// Error policy.
	e := r.Errors
	if e.MaxAttempts < 0 || e.MaxAttempts > 1000 {
		add(at("errors", "max_attempts"), "errors.max_attempts: %d out of 1..1000", e.MaxAttempts)
	}
	if e.Backoff < 0 || e.MaxBackoff < 0 || (e.MaxBackoff > 0 && e.Backoff > e.MaxBackoff) {
		add(at("errors"), "errors: backoff must be positive and not above max_backoff")
	}
	if e.Jitter != nil && (*e.Jitter < 0 || *e.Jitter > 1) {
		add(at("errors", "jitter"), "errors.jitter: %v out of 0..1", *e.Jitter)
	}
	if rl := r.RateLimit; rl != nil {
		if rl.PerSecond <= 0 {
			add(at("rate_limit", "per_second"), "rate_limit.per_second: must be positive")
		}
		if rl.Burst < 0 {
			add(at("rate_limit", "burst"), "rate_limit.burst: must not be negative")
		}
	}
	return errs
}

func firstLine(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

func pathString(path []any) string {
	s := ""
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if s != "" {
				s += "."
			}
			s += k
		case int:
			s += fmt.Sprintf("[%d]", k)
		}
	}
	return s
}

func oneLine(s string) string {
	out := make([]rune, 0, len(s))
	for _, c := range s {
		if c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return string(out)
}

// Built-in endpoint kinds of the engine.
const (
	kindBus      = "bus"
	kindSchedule = "schedule"
)

// BusEndpointConfig configures a bus endpoint: as a source the route
// consumes the topic, as a sink it publishes to it.
type BusEndpointConfig struct {
	// Topic on the hub's bus.
	Topic string `yaml:"topic"`
}

// Validate reports problems of the configuration.
func (c *BusEndpointConfig) Validate() error {
	if c.Topic == "" {
		return fmt.Errorf("topic is required")
	}
	return nil
}

// ScheduleConfig configures a schedule source: it emits one message every
// interval (a poll trigger for routes whose first step fetches).
type ScheduleConfig struct {
	// Every is the interval.
	Every time.Duration `yaml:"every"`
	// Body is the body of each emitted message.
	Body string `yaml:"body"`
	// Headers of each emitted message.
	Headers map[string]string `yaml:"headers"`
}

// Validate reports problems of the configuration.
func (c *ScheduleConfig) Validate() error {
	if c.Every <= 0 {
		return fmt.Errorf("every must be a positive duration")
	}
	return nil
}
