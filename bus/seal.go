package bus

import (
	"context"
	"fmt"
	"maps"
	"time"
)

// Sealer encrypts message bodies at rest: on the bus (the local bus's
// database, Pulsar's ledgers) and in the route engine's dead letters.
// security/fieldcrypt.Ring implements it with SM4-GCM; Open must accept
// everything Seal produced under any key still held.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// HeaderSealed is set on a message whose Body is sealed. Messages without it
// (published before sealing was turned on) are delivered as they are.
const HeaderSealed = "mzhub-sealed"

// SealMessage returns m with its Body sealed and HeaderSealed set. A
// message already sealed is returned as it is. m's Headers map is not
// changed (the result has its own).
func SealMessage(s Sealer, m Message) (Message, error) {
	if m.Headers[HeaderSealed] != "" {
		return m, nil
	}
	body, err := s.Seal(m.Body)
	if err != nil {
		return m, fmt.Errorf("bus: seal body: %w", err)
	}
	h := make(map[string]string, len(m.Headers)+1)
	maps.Copy(h, m.Headers)
	h[HeaderSealed] = "1"
	m.Headers, m.Body = h, body
	return m, nil
}

// OpenMessage reverses SealMessage. A message without HeaderSealed is
// returned as it is.
func OpenMessage(s Sealer, m Message) (Message, error) {
	if m.Headers[HeaderSealed] == "" {
		return m, nil
	}
	body, err := s.Open(m.Body)
	if err != nil {
		return m, fmt.Errorf("bus: open sealed body of %s: %w", m.ID, err)
	}
	h := make(map[string]string, len(m.Headers))
	for k, v := range m.Headers {
		if k != HeaderSealed {
			h[k] = v
		}
	}
	m.Headers, m.Body = h, body
	return m, nil
}

// Sealed returns a Bus that seals every body b stores and opens it again
// for consumers, who see the message as it was published. A delivery whose
// body cannot be opened (its key was retired, or it was altered at rest) is
// nacked with the reason and, after MaxDeliveries, dead-lettered still
// sealed.
func Sealed(b Bus, s Sealer) Bus { return &sealedBus{b: b, s: s} }

type sealedBus struct {
	b Bus
	s Sealer
}

// Check forwards to the sealed bus.
func (s *sealedBus) Check(ctx context.Context) error { return Check(ctx, s.b) }

func (sb *sealedBus) Publish(ctx context.Context, topic string, msgs ...Message) error {
	sealed := make([]Message, len(msgs))
	for i, m := range msgs {
		var err error
		if sealed[i], err = SealMessage(sb.s, m); err != nil {
			return err
		}
	}
	return sb.b.Publish(ctx, topic, sealed...)
}

func (sb *sealedBus) Subscribe(ctx context.Context, opts SubscribeOptions) (Subscription, error) {
	sub, err := sb.b.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &sealedSub{sub: sub, s: sb.s}, nil
}

func (sb *sealedBus) Close(ctx context.Context) error { return sb.b.Close(ctx) }

type sealedSub struct {
	sub Subscription
	s   Sealer
}

// unopenedRetry is the redelivery delay of a body that could not be opened:
// a key being loaded may arrive, an altered body never will.
const unopenedRetry = 10 * time.Second

func (ss *sealedSub) Receive(ctx context.Context) (Delivery, error) {
	for {
		d, err := ss.sub.Receive(ctx)
		if err != nil {
			return nil, err
		}
		m, err := OpenMessage(ss.s, d.Message())
		if err == nil {
			return &openedDelivery{Delivery: d, m: m}, nil
		}
		if nerr := d.Nack(ctx, unopenedRetry, err); nerr != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

func (ss *sealedSub) Close(ctx context.Context) error { return ss.sub.Close(ctx) }

// openedDelivery is a delivery whose message was opened on receipt.
type openedDelivery struct {
	Delivery
	m Message
}

func (d *openedDelivery) Message() Message { return d.m }
