package platformsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// Subscription is the platform's subscription on funeral.TopicChanges.
const Subscription = "funeral-platform"

// Subscriber attaches consumers to the bus; bus.Bus satisfies it.
type Subscriber interface {
	Subscribe(ctx context.Context, opts bus.SubscribeOptions) (bus.Subscription, error)
}

// Platform reads funeral.TopicChanges and keeps, per partner, kind and
// record id, the highest revision it saw (a repeat or an older revision
// changes nothing, as the change's contract asks of consumers).
type Platform struct {
	b   Subscriber
	log *slog.Logger

	mu       sync.Mutex
	latest   map[string]int64
	received int
	repeats  int
	bad      int
	changed  chan struct{} // closed and replaced at every message
}

// New returns a platform reading from b; log may be nil.
func New(b Subscriber, log *slog.Logger) *Platform {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Platform{b: b, log: log, latest: map[string]int64{}, changed: make(chan struct{})}
}

// Run subscribes and reads until ctx is done.
func (p *Platform) Run(ctx context.Context) error {
	sub, err := p.b.Subscribe(ctx, bus.SubscribeOptions{Topic: funeral.TopicChanges, Subscription: Subscription})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("funeral platform: subscribe %s: %w", funeral.TopicChanges, err)
	}
	defer sub.Close(context.WithoutCancel(ctx))
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return nil
			}
			return fmt.Errorf("funeral platform: receive: %w", err)
		}
		p.take(d.Message())
		if err := d.Ack(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("funeral platform: ack", "err", err)
		}
	}
}

// take applies one change.
func (p *Platform) take(m bus.Message) {
	var c funeral.Change
	err := json.Unmarshal(m.Body, &c)
	p.mu.Lock()
	defer func() {
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}()
	p.received++
	if err != nil || c.PartnerID == "" || c.Kind == "" || c.ID == "" {
		p.bad++
		p.log.Warn("funeral platform: a change it cannot read", "idempotency_key", m.IdempotencyKey)
		return
	}
	if p.received == 1 {
		p.log.Info("simulated funeral platform reads funeral.changes", "subscription", Subscription)
	}
	k := c.PartnerID + "/" + c.Kind + "/" + c.ID
	if rev, ok := p.latest[k]; ok && rev >= c.Revision {
		p.repeats++
		return
	}
	p.latest[k] = c.Revision
}

// Stats are what the platform has read.
type Stats struct {
	// Received counts messages; Records the records known; Repeats the
	// messages that brought nothing newer; Bad the unreadable ones.
	Received, Records, Repeats, Bad int
}

// Stats returns what the platform has read so far.
func (p *Platform) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Received: p.received, Records: len(p.latest), Repeats: p.repeats, Bad: p.bad}
}

// Revision returns the latest revision known of a record (partner id,
// kind, record id) and whether the record is known.
func (p *Platform) Revision(partnerID, kind, id string) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.latest[partnerID+"/"+kind+"/"+id]
	return r, ok
}

// WaitReceived blocks until at least n messages were read or ctx is done.
func (p *Platform) WaitReceived(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, ch := p.received, p.changed
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("funeral platform: %d of %d messages: %w", got, n, ctx.Err())
		}
	}
}

// String summarises the stats for logs.
func (s Stats) String() string {
	return "received " + strconv.Itoa(s.Received) + ", records " + strconv.Itoa(s.Records) +
		", repeats " + strconv.Itoa(s.Repeats) + ", unreadable " + strconv.Itoa(s.Bad)
}
