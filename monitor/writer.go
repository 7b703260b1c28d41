package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Appender is what the Writer stores batches into (a Store). Append must
// not keep evs after it returns: the writer reuses the array.
type Appender interface {
	Append(ctx context.Context, evs []Event) error
}

// Observer sees every batch the writer takes in, before it is stored (the
// expectation tracker uses it). It runs on the writer goroutine and must be
// quick; it must not keep evs.
type Observer func(evs []Event)

// WriterOptions tune a Writer; zero values take the defaults of DefaultConfig.
type WriterOptions struct {
	// FlushSize, FlushInterval and BufferSize as in Config.
	FlushSize     int
	FlushInterval time.Duration
	BufferSize    int
	// Node is stamped on events that carry none.
	Node string
	// Clock stamps events without a time; nil is the real clock.
	Clock clock.Clock
	// Logger reports store failures; nil discards.
	Logger *slog.Logger
	// Metrics, when non-nil, counts events and the writer's health.
	Metrics *Metrics
	// Observers see each batch.
	Observers []Observer
	// Spool, when set, keeps the events given to EmitDurable until the
	// store has them, so that a crash loses none of them (nil: EmitDurable
	// is Emit).
	Spool Spool
}

// Spool keeps events durably until the event store has them: the events
// of an exchange acknowledged to a partner survive a crash of the replica
// that took it (monitor/spool keeps them in the state database).
type Spool interface {
	// Put stores evs durably, all or none.
	Put(ctx context.Context, evs []Event) error
	// Remove forgets the events with ids (the store has them).
	Remove(ctx context.Context, ids []string) error
	// Recover returns the events a replica left in the spool: this
	// replica's own when own is set (at its start, from before a crash),
	// and those of replicas no longer alive. Each is returned to one
	// caller only.
	Recover(ctx context.Context, own bool) ([]Event, error)
}

// Writer batches events into a store. Emit never blocks on the store and
// never fails: events are buffered in memory (up to BufferSize) while the
// store is slow or down, and counted as dropped beyond that. Run owns the
// flushing goroutine; Close flushes what is left within its deadline.
type Writer struct {
	store Appender
	opt   WriterOptions
	log   *slog.Logger

	// flushMu serialises flushes: the Run loop's, Flush's and Close's
	// (pending, pendingFrom, backoff and retryAt are theirs). Two at once
	// once sliced pending under each other (a panic seen in TestPortalDemo
	// under -race, a test's Flush beside the loop's).
	flushMu sync.Mutex

	mu       sync.Mutex
	incoming []Event
	spares   [][]Event // stored batches' backing arrays, reused by Emit
	oldest   time.Time // time the oldest incoming event was emitted
	closed   bool

	held    atomic.Int64 // incoming + pending
	dropped atomic.Int64
	// failing is the last store error and since when the store has been
	// failing (nil while the last attempt succeeded).
	failing atomic.Pointer[storeFailure]
	kick    chan struct{}
	done    chan struct{} // closed when Run returns
	stored  chan struct{} // closed (and replaced) after each stored batch; guarded by mu

	idPrefix string
	idSeq    atomic.Uint64

	// spoolQ holds EmitDurable calls waiting for the spooler's next
	// commit; spoolKick wakes it.
	spoolMu   sync.Mutex
	spoolQ    []spoolReq
	spoolKick chan struct{}

	// pending is owned by the Run goroutine: events taken in but not stored.
	pending     []Event
	pendingFrom time.Time
	backoff     time.Duration
	retryAt     time.Time
	observers   []Observer
}

// NewWriter returns a writer storing into store.
func NewWriter(store Appender, opt WriterOptions) *Writer {
	def := DefaultConfig()
	if opt.FlushSize <= 0 {
		opt.FlushSize = def.EffectiveFlushSize()
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = def.FlushInterval
	}
	if opt.BufferSize < opt.FlushSize {
		opt.BufferSize = max(def.BufferSize, opt.FlushSize)
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &Writer{
		store:     store,
		opt:       opt,
		log:       log,
		kick:      make(chan struct{}, 1),
		spoolKick: make(chan struct{}, 1),
		done:      make(chan struct{}),
		idPrefix:  strconv.FormatInt(time.Now().UnixMilli(), 36) + hex.EncodeToString(b) + "-",
		observers: opt.Observers,
	}
}

// Stored returns a channel closed the next time the writer has stored a
// batch: a test waits on it, then looks in the store, instead of polling.
func (w *Writer) Stored() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stored == nil {
		w.stored = make(chan struct{})
	}
	return w.stored
}

// AddObserver adds an observer; call it before Run.
func (w *Writer) AddObserver(o Observer) { w.observers = append(w.observers, o) }

// NewID returns a fresh event id, unique across processes with high probability.
func (w *Writer) NewID() string {
	return w.idPrefix + strconv.FormatUint(w.idSeq.Add(1), 36)
}

// Emit queues ev. It never blocks on the store and never fails; when the
// buffer is full the event is dropped and counted.
func (w *Writer) Emit(ev Event) {
	// Only the time is stamped here; ids, node, status and masking are
	// done on the writer goroutine (see stamp) to keep the caller's cost low.
	if ev.Time.IsZero() {
		ev.Time = w.opt.Clock.Now()
	}
	if w.held.Load() >= int64(w.opt.BufferSize) {
		w.drop(1)
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.drop(1)
		return
	}
	if len(w.incoming) == 0 {
		w.oldest = time.Now()
		if w.incoming == nil {
			// A whole batch's room at once: growing by appends would
			// copy and allocate about twice per batch.
			if n := len(w.spares); n > 0 {
				w.incoming, w.spares = w.spares[n-1], w.spares[:n-1]
			} else {
				w.incoming = make([]Event, 0, w.opt.FlushSize)
			}
		}
	}
	w.incoming = append(w.incoming, ev)
	n := len(w.incoming)
	w.mu.Unlock()
	w.held.Add(1)
	if n >= w.opt.FlushSize {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// DurableEmitter is an event sink that can make events durable before
// the caller acknowledges their exchange (Writer, hubmon.Monitor).
type DurableEmitter interface {
	EmitDurable(ctx context.Context, evs ...Event) error
}

// EmitDurable gives evs to e durably when e is a DurableEmitter, and emits
// them otherwise.
func EmitDurable(ctx context.Context, e interface{ Emit(Event) }, evs ...Event) error {
	if d, ok := e.(DurableEmitter); ok {
		return d.EmitDurable(ctx, evs...)
	}
	for i := range evs {
		e.Emit(evs[i])
	}
	return nil
}

// spoolReq is one EmitDurable call: its events, committed together, and
// where the spooler answers.
type spoolReq struct {
	evs  []Event
	done chan error
}

// EmitDurable queues evs like Emit, and returns only once they are
// durable (in the spool, committed with whatever else is waiting), so a
// caller that acknowledges an exchange after it returns never has an
// exchange whose events a crash lost. It fails when the spool cannot take
// the events or ctx is done first; the caller then does not acknowledge
// (the partner resends). Without a spool it is Emit. Run must be running.
func (w *Writer) EmitDurable(ctx context.Context, evs ...Event) error {
	if w.opt.Spool == nil {
		for i := range evs {
			w.Emit(evs[i])
		}
		return nil
	}
	if len(evs) == 0 {
		return nil
	}
	req := spoolReq{evs: make([]Event, len(evs)), done: make(chan error, 1)}
	for i, ev := range evs {
		if ev.Time.IsZero() {
			ev.Time = w.opt.Clock.Now()
		}
		w.stamp(&ev)
		ev.spooled = true
		req.evs[i] = ev
	}
	w.spoolMu.Lock()
	w.spoolQ = append(w.spoolQ, req)
	w.spoolMu.Unlock()
	select {
	case w.spoolKick <- struct{}{}:
	default:
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("monitor: spool event: %w", ctx.Err())
	}
}

// spooler commits the queued EmitDurable events to the spool, as many at
// once as are waiting (group commit), then hands them to the writer.
func (w *Writer) spooler(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.failSpoolQueue(ctx.Err())
			return
		case <-w.spoolKick:
		}
		for {
			w.spoolMu.Lock()
			q := w.spoolQ
			w.spoolQ = nil
			w.spoolMu.Unlock()
			if len(q) == 0 {
				break
			}
			evs := q[0].evs
			if len(q) > 1 {
				n := 0
				for i := range q {
					n += len(q[i].evs)
				}
				evs = make([]Event, 0, n)
				for i := range q {
					evs = append(evs, q[i].evs...)
				}
			}
			err := w.opt.Spool.Put(ctx, evs)
			if err != nil {
				err = fmt.Errorf("monitor: spool events: %w", err)
				w.log.Warn("monitor: spool events", "events", len(evs), "err", err)
			} else {
				w.add(evs)
			}
			for i := range q {
				q[i].done <- err
			}
		}
	}
}

func (w *Writer) failSpoolQueue(cause error) {
	w.spoolMu.Lock()
	q := w.spoolQ
	w.spoolQ = nil
	w.spoolMu.Unlock()
	for i := range q {
		q[i].done <- fmt.Errorf("monitor: spool: writer stopped: %w", cause)
	}
}

// add queues events already stamped (spooled or recovered) for storing.
// They are never dropped for a full buffer: they are durable already, and
// the spool holds them until stored.
func (w *Writer) add(evs []Event) {
	w.mu.Lock()
	if len(w.incoming) == 0 {
		w.oldest = time.Now()
	}
	w.incoming = append(w.incoming, evs...)
	n := len(w.incoming)
	w.mu.Unlock()
	w.held.Add(int64(len(evs)))
	if n >= w.opt.FlushSize {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// recover takes the spooled events of a crash (own) or of replicas no
// longer alive into the writer.
func (w *Writer) recoverSpool(ctx context.Context, own bool) {
	evs, err := w.opt.Spool.Recover(ctx, own)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("monitor: recover spooled events", "err", err)
		}
		return
	}
	if len(evs) == 0 {
		return
	}
	for i := range evs {
		evs[i].spooled = true
	}
	w.log.Info("monitor: recovered spooled events", "events", len(evs), "own", own)
	w.add(evs)
}

// assignIDs gives every event of in without an id a fresh one: all of
// them are cut from one string, one allocation per batch instead of one
// per event.
func (w *Writer) assignIDs(in []Event) {
	n := 0
	for i := range in {
		if in[i].ID == "" {
			n++
		}
	}
	if n == 0 {
		return
	}
	first := w.idSeq.Add(uint64(n)) - uint64(n) + 1
	var b strings.Builder
	b.Grow(n * (len(w.idPrefix) + 8))
	ends := make([]int, 0, n)
	var num [20]byte
	for k := range uint64(n) {
		b.WriteString(w.idPrefix)
		b.Write(strconv.AppendUint(num[:0], first+k, 36))
		ends = append(ends, b.Len())
	}
	all := b.String()
	start, k := 0, 0
	for i := range in {
		if in[i].ID == "" {
			in[i].ID = all[start:ends[k]]
			start = ends[k]
			k++
		}
	}
}

// stamp fills what the emitter left out and masks the error message.
func (w *Writer) stamp(ev *Event) {
	if ev.ID == "" {
		ev.ID = w.NewID()
	}
	if ev.Node == "" {
		ev.Node = w.opt.Node
	}
	if ev.Status == "" {
		ev.Status = OK
	}
	if ev.ErrorMessage != "" {
		// Emitters mask; this is the safety net before anything is stored.
		ev.ErrorMessage = mask.Text(ev.ErrorMessage)
	}
}

func (w *Writer) drop(n int) {
	w.dropped.Add(int64(n))
	if w.opt.Metrics != nil {
		w.opt.Metrics.dropped.Add(float64(n))
	}
}

// Stats reports the writer's state.
type Stats struct {
	// Held counts events not stored yet.
	Held int64
	// Dropped counts events lost because the buffer was full or the writer closed.
	Dropped int64
	// StoreError is the last failed store attempt's error while the store
	// keeps failing (nil once a batch was stored again).
	StoreError error
	// FailingSince is when the store started failing (zero when it is not).
	FailingSince time.Time
}

type storeFailure struct {
	err   error
	since time.Time
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	st := Stats{Held: w.held.Load(), Dropped: w.dropped.Load()}
	if f := w.failing.Load(); f != nil {
		st.StoreError, st.FailingSince = f.err, f.since
	}
	return st
}

// Run flushes by size or time until ctx is done. Call Close afterwards to
// flush the rest.
func (w *Writer) Run(ctx context.Context) error {
	defer close(w.done)
	t := time.NewTicker(w.opt.FlushInterval)
	defer t.Stop()
	if w.opt.Spool != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { w.spooler(ctx) })
		w.recoverSpool(ctx, true)
	}
	// Replicas that died and did not come back leave spooled events:
	// look for them now and then.
	adopt := time.NewTicker(time.Minute)
	defer adopt.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.kick:
		case <-adopt.C:
			if w.opt.Spool != nil {
				w.recoverSpool(ctx, false)
			}
		}
		w.flush(ctx)
	}
}

// Close stops taking events and stores what is held, trying until ctx is
// done. Events still held then are counted as dropped. Call it after Run has
// returned (or without Run, e.g. in tests).
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.flushMu.Lock()
	w.backoff, w.retryAt = 0, time.Time{}
	w.flushMu.Unlock()
	for {
		w.flush(ctx)
		if w.held.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			lost := w.held.Load()
			w.drop(int(lost))
			w.held.Store(0)
			return fmt.Errorf("monitor: close writer: %d events not stored: %w", lost, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Flush stores what is held now (for tests and Close); it returns the error
// of the last store attempt.
func (w *Writer) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.backoff, w.retryAt = 0, time.Time{}
	return w.flushLocked(ctx)
}

func (w *Writer) flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	return w.flushLocked(ctx)
}

// flushLocked stores what is held; the caller holds flushMu.
func (w *Writer) flushLocked(ctx context.Context) error {
	w.mu.Lock()
	in := w.incoming
	from := w.oldest
	w.incoming = nil
	if len(in) == 0 && len(w.pending) == 0 {
		// Idle (nothing came in since the last flush, nothing waits for
		// the store): the spare batch arrays go back to the heap, to be
		// made again when events come.
		w.spares = nil
	}
	w.mu.Unlock()
	if len(in) > 0 {
		w.assignIDs(in)
		for i := range in {
			w.stamp(&in[i])
		}
		for _, o := range w.observers {
			o(in)
		}
		if m := w.opt.Metrics; m != nil {
			for i := range in {
				m.observe(&in[i])
			}
		}
		if len(w.pending) == 0 {
			w.pendingFrom = from
			w.pending = in
		} else {
			w.pending = append(w.pending, in...)
		}
	}
	defer w.gauge()
	if len(w.pending) == 0 {
		return nil
	}
	if now := time.Now(); now.Before(w.retryAt) {
		return nil
	}
	all := w.pending
	for len(w.pending) > 0 {
		n := min(len(w.pending), w.opt.FlushSize)
		start := time.Now()
		err := w.store.Append(ctx, w.pending[:n])
		if w.opt.Metrics != nil {
			w.opt.Metrics.flushed(n, time.Since(start), err)
		}
		if err != nil {
			w.backoff = min(max(2*w.backoff, w.opt.FlushInterval), 30*time.Second)
			w.retryAt = time.Now().Add(w.backoff)
			w.log.Warn("monitor: store events", "events", len(w.pending), "retry_in", w.backoff, "err", err)
			since := start
			if f := w.failing.Load(); f != nil {
				since = f.since
			}
			w.failing.Store(&storeFailure{err: err, since: since})
			return err
		}
		w.failing.Store(nil)
		w.backoff = 0
		w.unspool(ctx, w.pending[:n])
		clear(w.pending[:n])
		w.pending = w.pending[n:]
		w.held.Add(-int64(n))
		w.mu.Lock()
		if w.stored != nil {
			close(w.stored)
			w.stored = nil
		}
		w.mu.Unlock()
	}
	if cap(all) >= w.opt.FlushSize && cap(all) <= 4*w.opt.FlushSize {
		w.mu.Lock()
		// Two spares: one for the emitters while the other's batch is
		// being stored.
		if len(w.spares) < 2 {
			w.spares = append(w.spares, all[:0])
		}
		w.mu.Unlock()
	}
	w.pending = nil
	return nil
}

func (w *Writer) gauge() {
	m := w.opt.Metrics
	if m == nil {
		return
	}
	m.buffered.Set(float64(w.held.Load()))
	if len(w.pending) > 0 && !w.pendingFrom.IsZero() {
		m.lag.Set(time.Since(w.pendingFrom).Seconds())
	} else {
		m.lag.Set(0)
	}
}

// unspool removes stored events from the spool. A failure leaves them
// there: they are stored again after a restart (stores ignore an event id
// they have).
func (w *Writer) unspool(ctx context.Context, evs []Event) {
	if w.opt.Spool == nil {
		return
	}
	var ids []string
	for i := range evs {
		if evs[i].spooled {
			ids = append(ids, evs[i].ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := w.opt.Spool.Remove(context.WithoutCancel(ctx), ids); err != nil {
		w.log.Warn("monitor: remove stored events from the spool", "events", len(ids), "err", err)
	}
}
