package funeralhome

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/keys"
)

func init() {
	connectors.Register(connectors.Spec{
		Name:    "funeral",
		Summary: "funeral-home booking API (outbound reservations for the one-stop portal)",
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { c := DefaultConfig(); return &c },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c, ok := cfg.(*Config)
				if !ok {
					return nil, fmt.Errorf("funeral: config is %T, want *funeralhome.Config", cfg)
				}
				return NewSink(context.Background(), *c, deps)
			},
		},
	})
}

// Command is the body of a booking message on the bus.
type Command struct {
	// Op is "reserve" or "cancel".
	Op string `json:"op"`
	// Reserve is the reservation to make (op reserve).
	Reserve *ReservationRequest `json:"reserve,omitempty"`
	// ReservationID and Reason cancel a reservation (op cancel).
	ReservationID string `json:"reservation_id,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// Sink delivers booking commands to a funeral home. It uses the message's
// IdempotencyKey as the Idempotency-Key, so a redelivery never books twice.
type Sink struct {
	client *Client
	deps   connectors.Deps
	cfg    Config
}

var _ connectors.Sink = (*Sink)(nil)

// NewSink reads the signing key from the key provider and returns the sink.
func NewSink(ctx context.Context, cfg Config, deps connectors.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret, err := keys.NewFile(cfg.KeyDir).Get(ctx, "partner/"+cfg.KeyID)
	if err != nil {
		return nil, fmt.Errorf("funeral %s: signing key: %w", cfg.Partner, err)
	}
	c, err := NewClient(cfg, secret)
	if err != nil {
		return nil, err
	}
	return &Sink{client: c, deps: deps, cfg: cfg}, nil
}

// Send executes one booking command.
func (s *Sink) Send(ctx context.Context, msg connectors.Message) error {
	var cmd Command
	if err := json.Unmarshal(msg.Body, &cmd); err != nil {
		return connectors.Permanent(fmt.Errorf("funeral %s: bad command: %w", s.cfg.Partner, err))
	}
	start := time.Now()
	var err error
	var ref string
	switch cmd.Op {
	case "reserve":
		if cmd.Reserve == nil {
			return connectors.Permanent(fmt.Errorf("funeral %s: reserve without a request", s.cfg.Partner))
		}
		ref = cmd.Reserve.HubReference
		_, err = s.client.Reserve(ctx, msg.IdempotencyKey, *cmd.Reserve)
	case "cancel":
		ref = cmd.ReservationID
		_, err = s.client.Cancel(ctx, msg.IdempotencyKey, cmd.ReservationID, cmd.Reason)
	default:
		return connectors.Permanent(fmt.Errorf("funeral %s: unknown op %q", s.cfg.Partner, cmd.Op))
	}
	if s.deps.Events != nil {
		ev := monitor.Event{Time: time.Now(), Partner: s.cfg.Partner, Flow: "funeral-booking", Direction: monitor.Outbound, Channel: "http",
			Type: monitor.Sent, Status: monitor.OK, ExchangeID: msg.IdempotencyKey, PartnerRef: ref, Duration: time.Since(start), Component: "funeral",
			Attrs: map[string]string{"op": cmd.Op}}
		if err != nil {
			ev.Type, ev.Status, ev.ErrorMessage = monitor.Failed, monitor.Error, err.Error()
		}
		s.deps.Events.Emit(ev)
	}
	return err
}
