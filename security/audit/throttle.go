package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
)

// Throttle bounds what callers who have not authenticated can make the
// audit log write: records handed to it (refused partner calls before
// authentication, failed console logins) are keyed by source address,
// action and outcome; the first PerKey records of a key in each Window are
// appended as they come, the rest are counted and appended as one summary
// record ("aggregated: N more …") when the window ends. A flood of 500
// refused requests from one address thus costs a dozen records, not 500,
// and none of it is lost from the count. Authenticated actions never go
// through a Throttle. It is safe for concurrent use.
type Throttle struct {
	next   Appender
	perKey int
	window time.Duration
	clock  clock.Clock

	mu   sync.Mutex
	keys map[throttleKey]*throttleWin
}

type throttleKey struct{ ip, action, outcome string }

type throttleWin struct {
	start, last time.Time
	n           int // records in this window (appended or held)
	held        int // records counted, not appended
	sample      Record
}

// maxThrottleKeys bounds the Throttle's memory: beyond it, new addresses
// share one key.
const maxThrottleKeys = 4096

var _ Appender = (*Throttle)(nil)

// NewThrottle returns a Throttle in front of next letting perKey records
// per key through each window. clk nil is the wall clock.
func NewThrottle(next Appender, perKey int, window time.Duration, clk clock.Clock) *Throttle {
	if clk == nil {
		clk = clock.Real{}
	}
	if perKey < 1 {
		perKey = 1
	}
	return &Throttle{next: next, perKey: perKey, window: window, clock: clk, keys: map[throttleKey]*throttleWin{}}
}

// Append appends r, or counts it when its key used up its window. A counted
// record returns sequence number 0 and no error.
func (t *Throttle) Append(ctx context.Context, r Record) (int64, error) {
	now := t.clock.Now()
	if r.Time.IsZero() {
		r.Time = now
	}
	k := throttleKey{ip: r.SourceIP, action: r.Action, outcome: r.Outcome}
	t.mu.Lock()
	var due []Record
	w := t.keys[k]
	if w != nil && now.Sub(w.start) >= t.window {
		if s, ok := t.summary(w); ok {
			due = append(due, s)
		}
		delete(t.keys, k)
		w = nil
	}
	if w == nil {
		if len(t.keys) >= maxThrottleKeys {
			k = throttleKey{ip: "*", action: r.Action, outcome: r.Outcome}
			w = t.keys[k]
		}
		if w == nil {
			w = &throttleWin{start: now}
			t.keys[k] = w
		}
	}
	w.n++
	w.last = now
	pass := w.n <= t.perKey
	if !pass {
		w.held++
		w.sample = r
	}
	t.mu.Unlock()
	for _, s := range due {
		if _, err := t.next.Append(ctx, s); err != nil {
			return 0, err
		}
	}
	if !pass {
		return 0, nil
	}
	return t.next.Append(ctx, r)
}

// summary is the record standing for w's held records.
func (t *Throttle) summary(w *throttleWin) (Record, bool) {
	if w.held == 0 {
		return Record{}, false
	}
	s := w.sample
	s.Time = w.last
	s.RequestID = ""
	s.Detail = fmt.Sprintf("aggregated: %d more records like this from %s to %s (last: %s %s)",
		w.held, w.start.UTC().Format(time.RFC3339), w.last.UTC().Format(time.RFC3339), w.sample.Object, w.sample.Detail)
	return s, true
}

// Flush appends the summaries of windows that ended (all of them when
// force is set, at shutdown).
func (t *Throttle) Flush(ctx context.Context, force bool) error {
	now := t.clock.Now()
	t.mu.Lock()
	var due []Record
	for k, w := range t.keys {
		if force || now.Sub(w.start) >= t.window {
			if s, ok := t.summary(w); ok {
				due = append(due, s)
			}
			delete(t.keys, k)
		}
	}
	t.mu.Unlock()
	for _, s := range due {
		if _, err := t.next.Append(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// Run flushes ended windows every window until ctx is done, then flushes
// the rest. Each replica runs its own.
func (t *Throttle) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return t.Flush(fctx, true)
		case <-t.clock.After(t.window):
			_ = t.Flush(ctx, false)
		}
	}
}
