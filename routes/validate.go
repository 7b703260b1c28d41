package routes

import (
	"fmt"
	"regexp"
	"time"

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

// validateRoute returns every problem of r; reg may be nil to skip
// connector checks. It runs the checks in stages, each looking at one part
// of the route file in the file's usual order.
func validateRoute(r *Route, reg kindChecker) []LintError {
	c := newRouteCheck(r, reg)
	c.checkHead()
	c.checkSource()
	c.checkSinks()
	c.checkSteps()
	c.checkErrors()
	c.checkRateLimit()
	c.checkReplyTo()
	return c.errs
}

// routeCheck collects the problems of one route with their lines.
type routeCheck struct {
	r   *Route
	reg kindChecker
	// sinkNames are the names a switch may use: given names, or kinds (and
	// kind-N) by default.
	sinkNames map[string]bool
	errs      []LintError
}

func newRouteCheck(r *Route, reg kindChecker) *routeCheck {
	c := &routeCheck{r: r, reg: reg, sinkNames: map[string]bool{}}
	tmp := *r
	tmp.To = append([]Endpoint(nil), r.To...)
	tmp.Steps = append([]Step(nil), r.Steps...)
	tmp.withDefaults()
	for _, t := range tmp.To {
		c.sinkNames[t.Name] = true
	}
	return c
}

func (c *routeCheck) add(line int, format string, a ...any) {
	c.errs = append(c.errs, LintError{File: c.r.file, Line: line, Message: fmt.Sprintf(format, a...)})
}

// at is the line of the node at path (or of its closest ancestor).
func (c *routeCheck) at(path ...any) int { return nodeLine(c.r.root, path...) }

// expr reports an expression at path that does not compile to kind.
func (c *routeCheck) expr(src, kind string, path ...any) {
	if src == "" {
		return
	}
	if _, err := compileExpr(src, kind); err != nil {
		c.add(c.at(path...), "%s: expression: %v", pathString(path), oneLine(err.Error()))
	}
}

// endpoint checks an endpoint's kind and config against the connectors
// (skipped without a registry); label names it in messages.
func (c *routeCheck) endpoint(role string, ep *Endpoint, label string, path ...any) {
	if c.reg == nil {
		return
	}
	if line, err := c.reg.checkEndpoint(role, ep); err != nil {
		c.add(firstLine(line, c.at(path...)), "%s (%s): %v", label, ep.Kind, oneLine(err.Error()))
	}
}

// checkHead checks the route's own keys: id, the key expressions,
// concurrency and backlog.
func (c *routeCheck) checkHead() {
	r := c.r
	if !routeID.MatchString(r.ID) {
		c.add(c.at("id"), "id: %q must be 1-100 of a-z, 0-9, '.', '_', '-' starting with a letter or digit", r.ID)
	}
	c.expr(r.Key, "string", "key")
	c.expr(r.IdempotencyKey, "string", "idempotency_key")
	if r.Concurrency < 0 || r.Concurrency > 1024 {
		c.add(c.at("concurrency"), "concurrency: %d out of 1..1024", r.Concurrency)
	}
	if r.MaxBacklog < 0 {
		c.add(c.at("max_backlog"), "max_backlog: must not be negative")
	}
}

// checkSource checks from: a kind that has a source, and its config.
func (c *routeCheck) checkSource() {
	if c.r.From.Kind == "" {
		c.add(c.at("from"), "from: kind is required")
		return
	}
	c.endpoint(roleSource, &c.r.From, "from", "from")
}

// checkSinks checks to: at least one sink, unique names, kinds that have
// a sink, and their configs.
func (c *routeCheck) checkSinks() {
	if len(c.r.To) == 0 {
		c.add(c.at("to"), "to: at least one sink is required")
	}
	names := map[string]bool{}
	for i := range c.r.To {
		t := &c.r.To[i]
		name := t.Name
		if name == "" {
			name = t.Kind
		}
		if names[name] && t.Name != "" {
			c.add(c.at("to", i, "name"), "to[%d]: duplicate sink name %q", i, name)
		}
		names[name] = true
		if t.Kind == "" {
			c.add(c.at("to", i), "to[%d]: kind is required", i)
			continue
		}
		if t.Timeout < 0 {
			c.add(c.at("to", i, "timeout"), "to[%d].timeout: must not be negative", i)
		}
		c.endpoint(roleSink, t, fmt.Sprintf("to[%d]", i), "to", i)
	}
}

// checkSteps checks that each step names exactly one registered kind and
// lets the kind's config check itself (expressions, sinks, endpoints).
func (c *routeCheck) checkSteps() {
	for i := range c.r.Steps {
		s := &c.r.Steps[i]
		cfg, ok := s.Config.(stepConfig)
		if s.kind() == "" || !ok {
			c.add(c.at("steps", i), "steps[%d]: exactly one of %s is required", i, stepNames())
			continue
		}
		cfg.check(&stepCheck{rc: c, i: i})
	}
}

// checkErrors checks the retry and dead-letter policy.
func (c *routeCheck) checkErrors() {
	e := c.r.Errors
	if e.MaxAttempts < 0 || e.MaxAttempts > 1000 {
		c.add(c.at("errors", "max_attempts"), "errors.max_attempts: %d out of 1..1000", e.MaxAttempts)
	}
	if e.Backoff < 0 || e.MaxBackoff < 0 || (e.MaxBackoff > 0 && e.Backoff > e.MaxBackoff) {
		c.add(c.at("errors"), "errors: backoff must be positive and not above max_backoff")
	}
	if e.Jitter != nil && (*e.Jitter < 0 || *e.Jitter > 1) {
		c.add(c.at("errors", "jitter"), "errors.jitter: %v out of 0..1", *e.Jitter)
	}
}

// checkReplyTo checks reply_to: a topic, and one sink that is not a bus
// endpoint (whether the sink's kind answers is known when it is built).
func (c *routeCheck) checkReplyTo() {
	t := c.r.ReplyTo
	if t == "" {
		return
	}
	if !replyTopic.MatchString(t) {
		c.add(c.at("reply_to"), "reply_to: %q is not a topic (1-200 of a-z, A-Z, 0-9, '.', '_', '-')", t)
	}
	if len(c.r.To) != 1 {
		c.add(c.at("reply_to"), "reply_to: a route with answers has exactly one sink, not %d", len(c.r.To))
	} else if c.r.To[0].Kind == kindBus {
		c.add(c.at("to", 0), "reply_to: the sink must be a partner's connector that answers, not a bus topic")
	}
	if t == c.r.Topic() {
		c.add(c.at("reply_to"), "reply_to: %q is the route's own topic", t)
	}
	if topic, ok := c.r.From.BusTopic(); ok && topic == t {
		c.add(c.at("reply_to"), "reply_to: %q is the topic the route consumes", t)
	}
}

var replyTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,200}$`)

// checkRateLimit checks the delivery rate limit.
func (c *routeCheck) checkRateLimit() {
	rl := c.r.RateLimit
	if rl == nil {
		return
	}
	if rl.PerSecond <= 0 {
		c.add(c.at("rate_limit", "per_second"), "rate_limit.per_second: must be positive")
	}
	if rl.Burst < 0 {
		c.add(c.at("rate_limit", "burst"), "rate_limit.burst: must not be negative")
	}
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
