package household

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Partner is a verification partner's client (connectors/hrss, hpf, samr,
// villagebank, ministry): its id, the calls a household needs, and the
// call itself under a key with a lookup by that key.
type Partner interface {
	// ID is the partner id ("hrss", "villagebank.vb01", ...).
	ID() string
	// Scopes returns the calls a household needs: one "" for in-city
	// partners, one province code per province for the ministry, none when
	// the partner has nothing to be asked.
	Scopes(members []Member) []string
	// Ask runs the check under q.Key. The partner keeps its answer under
	// the key, so asking twice never checks twice. A Pending answer is
	// completed later through Lookup.
	Ask(ctx context.Context, q Query) (Answer, error)
	// Lookup returns what the partner holds under q.Key: found false when
	// it never received the call.
	Lookup(ctx context.Context, q Query) (Answer, bool, error)
}

// Headers of a query on the bus (the verification service sets them; the
// answers carry them back).
const (
	// HeaderPartner is the partner id the query is for.
	HeaderPartner = "household-partner"
	// HeaderOp is OpAsk (run the check) or OpLookup (what the partner
	// holds under the key: the poll of an asynchronous partner).
	HeaderOp = "household-op"
	// HeaderCall is the key of the service's call the query belongs to
	// (the query's idempotency key may add a suffix: a poll, a re-ask).
	HeaderCall = "household-call"
)

// Operations of a query.
const (
	OpAsk    = "ask"
	OpLookup = "lookup"
)

// Reply is the body of a partner's answer on the bus.
type Reply struct {
	// Found is false when a lookup found nothing under the key (the
	// partner never received the call).
	Found bool `json:"found"`
	// Answer is the partner's answer (nil when not found or bad).
	Answer *Answer `json:"answer,omitempty"`
	// BadAnswer is why the partner's answer could not be read (masked):
	// the call is rejected, not retried.
	BadAnswer string `json:"bad_answer,omitempty"`
}

// Clients finds the clients of the verification partners, built by the hub
// from its configuration (the verification section and
// configs/partners/villagebanks.yaml, credentials from the key provider;
// the demo's point at its simulators). The hub hands it to the connector
// kinds as connectors.Deps.Partners.
type Clients interface {
	PartnerClient(id string) (any, error)
}

// SinkConfig configures a verification partner's sink: which partner it
// delivers to. The partner's endpoint, credentials, deadline, breaker and
// rate limit are the hub's configuration of that partner, not the route's.
type SinkConfig struct {
	// Partner is the partner id, or a prefix ending in * (villagebank.*) to deliver each query to the partner its household-partner header names.
	Partner string `yaml:"partner"`
}

// SinkSpec is the connector kind name of a verification partner: a sink
// that answers (a routes.Replier, and a routes.AnswerChecker through the
// partner's lookup by key) for the partner id or prefix partner.
func SinkSpec(name, summary, partner string) connectors.Spec {
	return connectors.Spec{
		Name:    name,
		Summary: summary,
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return &SinkConfig{Partner: partner} },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c, ok := cfg.(*SinkConfig)
				if !ok {
					return nil, fmt.Errorf("%s sink: config is %T, want *household.SinkConfig", name, cfg)
				}
				if c.Partner != partner && !(strings.HasSuffix(partner, "*") && strings.HasPrefix(c.Partner, strings.TrimSuffix(partner, "*"))) {
					return nil, fmt.Errorf("%s sink: partner %q is not one of %s", name, c.Partner, partner)
				}
				cl, ok := deps.Partners.(Clients)
				if !ok || cl == nil {
					return nil, fmt.Errorf("%s sink: the hub holds no verification partner clients", name)
				}
				s := &Sink{pattern: c.Partner, clients: cl}
				if !strings.HasSuffix(c.Partner, "*") {
					// A single partner must be configured for the route to run.
					if _, err := s.partner(c.Partner); err != nil {
						return nil, fmt.Errorf("%s sink: %w", name, err)
					}
				}
				return s, nil
			},
		},
	}
}

// Sink delivers queries to a verification partner and returns its answers.
type Sink struct {
	pattern string
	clients Clients
}

func (s *Sink) partner(id string) (Partner, error) {
	if s.pattern != id && !(strings.HasSuffix(s.pattern, "*") && strings.HasPrefix(id, strings.TrimSuffix(s.pattern, "*"))) {
		return nil, connectors.Permanent(fmt.Errorf("partner %q is not served by this sink (%s)", id, s.pattern))
	}
	c, err := s.clients.PartnerClient(id)
	if err != nil {
		return nil, connectors.Permanent(fmt.Errorf("partner %s: %w", id, err))
	}
	p, ok := c.(Partner)
	if !ok {
		return nil, connectors.Permanent(fmt.Errorf("partner %s: client %T is not a verification partner", id, c))
	}
	return p, nil
}

// decode reads a query message: its partner and the query.
func (s *Sink) decode(msg bus.Message) (Partner, Query, error) {
	id := msg.Headers[HeaderPartner]
	if id == "" {
		id = s.pattern
	}
	p, err := s.partner(id)
	if err != nil {
		return nil, Query{}, err
	}
	var q Query
	if err := json.Unmarshal(msg.Body, &q); err != nil {
		return nil, Query{}, connectors.Permanent(fmt.Errorf("partner %s: query: %w", id, err))
	}
	if q.Key == "" {
		return nil, Query{}, connectors.Permanent(fmt.Errorf("partner %s: query without a key", id))
	}
	return p, q, nil
}

// Send delivers the query; the answer is dropped (routes with reply_to use Reply).
func (s *Sink) Send(ctx context.Context, msg bus.Message) error {
	_, err := s.Reply(ctx, msg)
	return err
}

// Reply asks the partner (or, for OpLookup, looks the key up) and returns
// its answer as a Reply. An answer that cannot be read is an answer too: a
// Reply with BadAnswer, so the call is rejected and not asked again.
func (s *Sink) Reply(ctx context.Context, msg bus.Message) (bus.Message, error) {
	p, q, err := s.decode(msg)
	if err != nil {
		return bus.Message{}, err
	}
	if msg.Headers[HeaderOp] == OpLookup {
		a, found, err := p.Lookup(ctx, q)
		return reply(a, found, err)
	}
	a, err := p.Ask(ctx, q)
	return reply(a, true, err)
}

// Answer fetches what the partner holds under the query's key (a delivery
// in doubt): found false when it never received the query.
func (s *Sink) Answer(ctx context.Context, msg bus.Message) (bus.Message, bool, error) {
	p, q, err := s.decode(msg)
	if err != nil {
		return bus.Message{}, false, err
	}
	a, found, err := p.Lookup(ctx, q)
	if err == nil && !found {
		return bus.Message{}, false, nil
	}
	m, err := reply(a, found, err)
	return m, err == nil, err
}

func reply(a Answer, found bool, err error) (bus.Message, error) {
	var r Reply
	switch {
	case errors.Is(err, ErrBadAnswer):
		r = Reply{Found: true, BadAnswer: mask.Text(err.Error())}
	case err != nil:
		return bus.Message{}, err
	case found:
		r = Reply{Found: true, Answer: &a}
	}
	b, jerr := json.Marshal(r)
	if jerr != nil {
		return bus.Message{}, connectors.Permanent(jerr)
	}
	return bus.Message{Headers: map[string]string{"Content-Type": "application/json"}, Body: b}, nil
}

// Endpoint describes the sink for dead letters and events.
func (s *Sink) Endpoint() string { return "verification partner " + s.pattern }

// Directory holds partner clients by id; it implements Clients. The hub
// fills it as it wires the partners, before the routes start.
type Directory struct {
	mu sync.RWMutex
	m  map[string]Partner
}

// NewDirectory returns a directory of ps.
func NewDirectory(ps ...Partner) *Directory {
	d := &Directory{m: map[string]Partner{}}
	d.Add(ps...)
	return d
}

// Add adds (or replaces) clients.
func (d *Directory) Add(ps ...Partner) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ps {
		d.m[p.ID()] = p
	}
}

// PartnerClient returns the client of partner id.
func (d *Directory) PartnerClient(id string) (any, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.m[id]
	if !ok {
		return nil, fmt.Errorf("%w: partner %s is not configured", ErrNotConfigured, id)
	}
	return p, nil
}

// ErrNotConfigured is a partner the hub's configuration does not wire.
var ErrNotConfigured = errors.New("not configured")
