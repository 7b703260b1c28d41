package ministry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
)

func init() {
	connectors.Register(InboundSpec())
	connectors.Register(ReturnSpec())
}

// Headers of the inbound direction's messages.
const (
	// HeaderRef is the platform's reference of an inbound request.
	HeaderRef = "ministry-ref"
	// HeaderProvince is the asking province's code.
	HeaderProvince = "ministry-province"
)

// InboundKey is the bus key of an inbound request: the platform's reference.
func InboundKey(ref string) string { return "ministry-in:" + ref }

// InboundConfig configures the "ministry-inbound" source.
type InboundConfig struct {
	// Limit is how many requests one pull reads.
	Limit int `yaml:"limit"`
	// Every is the wait between pulls when the queue is empty or the platform fails.
	Every time.Duration `yaml:"every"`
}

// Validate checks the settings.
func (c *InboundConfig) Validate() error {
	if c.Limit < 1 || c.Limit > 500 {
		return fmt.Errorf("limit %d: want 1 to 500", c.Limit)
	}
	if c.Every < 100*time.Millisecond {
		return fmt.Errorf("every %s: want at least 100ms", c.Every)
	}
	return nil
}

// client finds the ministry client the hub built (connectors.Deps.Partners).
func client(kind string, deps connectors.Deps) (*Client, error) {
	cl, ok := deps.Partners.(household.Clients)
	if !ok || cl == nil {
		return nil, fmt.Errorf("%s: the hub holds no verification partner clients", kind)
	}
	c, err := cl.PartnerClient(PartnerID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	mc, ok := c.(*Client)
	if !ok {
		return nil, fmt.Errorf("%s: client %T is not the ministry platform's", kind, c)
	}
	return mc, nil
}

// InboundSpec is the "ministry-inbound" connector kind: a source pulling the
// other provinces' requests from the platform's queue. Each request is
// emitted under its reference (InboundKey) and acknowledged to the
// platform only once it is on the bus; a crash in between pulls it again
// under the same key.
func InboundSpec() connectors.Spec {
	return connectors.Spec{
		Name:    "ministry-inbound",
		Summary: "the ministry platform's queue of other provinces' verification requests: pulled, emitted under their reference, acknowledged once on the bus; endpoint from the hub's verification.ministry",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return &InboundConfig{Limit: 50, Every: 5 * time.Second} },
			New: func(cfg any, deps connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*InboundConfig)
				if !ok {
					return nil, fmt.Errorf("ministry-inbound: config is %T, want *ministry.InboundConfig", cfg)
				}
				mc, err := client("ministry-inbound", deps)
				if err != nil {
					return nil, err
				}
				clk := deps.Clock
				if clk == nil {
					clk = clock.Real{}
				}
				log := deps.Logger
				if log == nil {
					log = slog.New(slog.DiscardHandler)
				}
				return &inboundSource{c: mc, cfg: *c, clock: clk, log: log}, nil
			},
		},
	}
}

type inboundSource struct {
	c     *Client
	cfg   InboundConfig
	clock clock.Clock
	log   *slog.Logger
}

// InboundMessage is the bus message of one inbound request.
func InboundMessage(in Inbound) (bus.Message, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return bus.Message{}, err
	}
	return bus.Message{Key: InboundKey(in.Ref), Body: b,
		Headers: map[string]string{"Content-Type": "application/json", HeaderRef: in.Ref, HeaderProvince: in.FromProvince}}, nil
}

// Run pulls until ctx is done; a failed pull, emit or ack is logged and
// tried again after Every (the platform keeps an unacknowledged request).
func (s *inboundSource) Run(ctx context.Context, emit connectors.Emit) error {
	for {
		n, err := s.once(ctx, emit)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("ministry inbound: pull failed; trying again", "err", err, "after", s.cfg.Every)
		}
		if ctx.Err() != nil {
			return nil
		}
		if n < s.cfg.Limit || err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-s.clock.After(s.cfg.Every):
			}
		}
	}
}

func (s *inboundSource) once(ctx context.Context, emit connectors.Emit) (int, error) {
	ins, err := s.c.Pull(ctx, s.cfg.Limit)
	if err != nil {
		return 0, err
	}
	for _, in := range ins {
		msg, err := InboundMessage(in)
		if err != nil {
			return 0, err
		}
		if err := emit(ctx, msg); err != nil {
			return 0, err
		}
		if err := s.c.Ack(ctx, in.Ref); err != nil {
			return 0, err
		}
	}
	return len(ins), nil
}

// ReturnBody is the body of an answer to return to the platform.
type ReturnBody struct {
	// Ref is the platform's reference of the inbound request.
	Ref string `json:"ref"`
	// Facts are Shanghai's findings about the persons asked about.
	Facts []household.Fact `json:"facts"`
	// Complete is false when some Shanghai unit did not answer in time.
	Complete bool `json:"complete"`
}

// ReturnConfig configures the "ministry-return" sink (nothing to set: the
// endpoint is the hub's verification.ministry).
type ReturnConfig struct{}

// ReturnSpec is the "ministry-return" connector kind: a sink returning
// Shanghai's answers to other provinces' requests. Returning twice is
// harmless (the platform keeps the first), so its answer to a delivery in
// doubt is to return again; it answers on reply_to with the reference.
func ReturnSpec() connectors.Spec {
	return connectors.Spec{
		Name:    "ministry-return",
		Summary: "returns Shanghai's answers to other provinces' verification requests to the ministry platform (idempotent by reference), answered on reply_to; endpoint from the hub's verification.ministry",
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return &ReturnConfig{} },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				mc, err := client("ministry-return", deps)
				if err != nil {
					return nil, err
				}
				return &returnSink{c: mc}, nil
			},
		},
	}
}

type returnSink struct{ c *Client }

func (s *returnSink) Send(ctx context.Context, msg bus.Message) error {
	_, err := s.Reply(ctx, msg)
	return err
}

// Reply returns the answer and answers with its reference.
func (s *returnSink) Reply(ctx context.Context, msg bus.Message) (bus.Message, error) {
	var b ReturnBody
	if err := json.Unmarshal(msg.Body, &b); err != nil {
		return bus.Message{}, connectors.Permanent(fmt.Errorf("ministry return: body: %w", err))
	}
	if b.Ref == "" {
		return bus.Message{}, connectors.Permanent(errors.New("ministry return: body without ref"))
	}
	if err := s.c.Return(ctx, b.Ref, b.Facts, b.Complete); err != nil {
		return bus.Message{}, err
	}
	out, _ := json.Marshal(map[string]any{"ref": b.Ref, "returned": true})
	return bus.Message{Headers: map[string]string{"Content-Type": "application/json"}, Body: out}, nil
}

// Answer settles a delivery in doubt by returning again (harmless twice).
func (s *returnSink) Answer(ctx context.Context, msg bus.Message) (bus.Message, bool, error) {
	m, err := s.Reply(ctx, msg)
	return m, err == nil, err
}

// Endpoint describes the sink for dead letters and events.
func (s *returnSink) Endpoint() string { return "ministry platform (returns)" }
