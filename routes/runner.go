package routes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// DeliveryChecker is a sink that can tell whether a message reached the
// partner (a status query by idempotency key). The engine asks it when a
// delivery is in doubt (an attempt timed out, was cancelled or cut by a
// shutdown, or the hub crashed after claiming it) instead of sending again
// blindly. Delivered answers true when the partner has msg, false when it
// has not, and an error when it cannot tell (the delivery stays in doubt).
type DeliveryChecker interface {
	Delivered(ctx context.Context, msg bus.Message) (bool, error)
}

// OptionalChecker is a DeliveryChecker that may be configured without the
// means to ask (an http sink without status_url): CanCheckDelivery false
// makes the engine treat it as a sink that cannot be asked.
type OptionalChecker interface {
	DeliveryChecker
	CanCheckDelivery() bool
}

// Endpointer is a sink or source that can describe its endpoint (a URL, a
// host and directory) for dead letters and events.
type Endpointer interface {
	Endpoint() string
}

// HTTPSource is a source answering inbound HTTP requests; the engine mounts
// it under /routes/<route id>.
type HTTPSource interface {
	connectors.Source
	http.Handler
}

// sinkRT is a sink of a running route.
type sinkRT struct {
	name       string
	kind       string
	endpoint   string
	sink       connectors.Sink
	checker    DeliveryChecker
	idempotent bool
	// resendInDoubt sends a delivery in doubt again when the sink cannot
	// be asked (Endpoint.ResendInDoubt).
	resendInDoubt bool
	timeout       time.Duration
	// replier answers each message (a route with reply_to); answers
	// fetches the answer kept under a key (a delivery in doubt).
	replier Replier
	answers AnswerChecker
}

// canCheck reports whether the sink named can be asked whether a message
// reached the partner (every sink when name is empty).
func (rn *runner) canCheck(name string) bool {
	for _, s := range rn.sinks {
		if (name == "" || s.name == name) && !s.idempotent && s.checker == nil {
			return false
		}
	}
	return true
}

// sinkError says which sink failed.
type sinkError struct {
	sink, endpoint string
	err            error
}

func (e *sinkError) Error() string {
	return "sink " + e.sink + " (" + e.endpoint + "): " + e.err.Error()
}
func (e *sinkError) Unwrap() error { return e.err }

// runner runs one route.
type runner struct {
	e      *Engine
	r      *Route
	log    *slog.Logger
	topic  string
	steps  []step
	aggs   []*aggregateStep
	sinks  []*sinkRT
	source connectors.Source
	httpIn HTTPSource
	ledger *ledger
	sched  *ScheduleConfig
	keyP   *program
	idemP  *program
	lim    *rate.Limiter
	// backlog holds one token per message published and not yet handled.
	backlog chan struct{}
	// inflight guards against handling one delivery twice at once.
	inflightMu sync.Mutex
	inflight   map[string]struct{}

	// cancel stops the intake (receiving, the source, the schedule); cut
	// cancels the deliveries in flight (a stop's deadline).
	cancel context.CancelFunc
	cut    context.CancelFunc
	done   chan struct{}
	// running is closed once the consumer is attached.
	running chan struct{}
	// direct is the route's one sink when the route has no steps and that
	// sink is a bus topic (kind: bus, no reply_to, no rate limit): emit
	// publishes the source's messages straight to its topic (one bus hop,
	// not two); see emitDirect.
	direct *sinkRT
}

// emit is the Emit handed to the route's source: it computes the keys,
// waits while the backlog is full (back pressure) and publishes durably.
func (rn *runner) emit(ctx context.Context, msgs ...bus.Message) error {
	for i := range msgs {
		if err := rn.keys(&msgs[i]); err != nil {
			return err
		}
	}
	if rn.direct != nil {
		return rn.emitDirect(ctx, msgs)
	}
	for range msgs {
		select {
		case rn.backlog <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The source acknowledges its partner once emit returns: by then the
	// messages are on the bus and their received events durable (the
	// monitor's spool), so a crash never leaves an accepted message
	// without its event. The two commits run side by side: the partner
	// waits for the slower, not for both in turn.
	evs := make([]monitor.Event, len(msgs))
	for i := range msgs {
		evs[i] = rn.newEvent(monitor.Received, monitor.OK, &msgs[i], func(ev *monitor.Event) { ev.Direction = monitor.Inbound; ev.Channel = rn.r.From.Kind })
	}
	err, derr := rn.publishAndSpool(ctx, rn.topic, msgs, evs)
	if err != nil {
		for range msgs {
			rn.release()
		}
		return fmt.Errorf("route %s: publish: %w", rn.r.ID, err)
	}
	rn.e.metrics.received.WithLabelValues(rn.r.ID).Add(float64(len(msgs)))
	if derr != nil {
		// The messages are on the bus; a resend is recognised by its
		// idempotency key and its event kept then.
		return fmt.Errorf("route %s: received events not durable: %w", rn.r.ID, derr)
	}
	return nil
}

// publishAndSpool publishes msgs on topic and makes their received events
// evs durable at the same time. When the publish fails, the events already
// spooled are followed by a rejected event each, so the monitor shows the
// exchange as refused (the source answered its partner with an error) and
// not as received and then lost.
func (rn *runner) publishAndSpool(ctx context.Context, topic string, msgs []bus.Message, evs []monitor.Event) (perr, derr error) {
	spooled := make(chan error, 1)
	go func() { spooled <- monitor.EmitDurable(ctx, rn.e.events, evs...) }()
	perr = rn.e.deps.Bus.Publish(ctx, topic, msgs...)
	derr = <-spooled
	if perr != nil && derr == nil {
		for i := range msgs {
			ev := rn.newEvent(monitor.Rejected, monitor.Error, &msgs[i], func(ev *monitor.Event) { ev.Direction = monitor.Inbound; ev.Channel = rn.r.From.Kind })
			setError(&ev, perr)
			rn.e.events.Emit(ev)
		}
	}
	return perr, derr
}

// emitDirect publishes msgs (their keys set) straight to the topic of the
// route's one bus sink, as the route's consumer would have after taking
// each from the route's topic: the same message (busSink), the same
// durability (it returns once the publish is committed), the received and
// sent events and metrics the two hops record. Nothing is left to the
// route's consumer, so nothing takes a backlog token, and no done record
// goes to the delivery ledger: that record only lets a redelivery from the
// route's topic skip a sink, and these messages are never on that topic.
// A failed publish returns the error to the source, which keeps its
// partner unacknowledged (the page is pulled again, the file not moved)
// and tries again later with the same idempotency keys.
func (rn *runner) emitDirect(ctx context.Context, msgs []bus.Message) error {
	s := rn.direct
	start := time.Now()
	out := make([]bus.Message, len(msgs))
	for i := range msgs {
		out[i] = sinkMessage(msgs[i])
	}
	// As emit's: the received events are durable before the source
	// acknowledges its partner, committed beside the publish.
	evs := make([]monitor.Event, len(msgs))
	for i := range msgs {
		evs[i] = rn.newEvent(monitor.Received, monitor.OK, &msgs[i], func(ev *monitor.Event) { ev.Direction = monitor.Inbound; ev.Channel = rn.r.From.Kind })
	}
	err, derr := rn.publishAndSpool(ctx, s.sink.(busSink).topic, out, evs)
	if err != nil {
		rn.e.metrics.deliveries.WithLabelValues(rn.r.ID, s.name, "failed").Add(float64(len(msgs)))
		return fmt.Errorf("route %s: publish to %s: %w", rn.r.ID, s.endpoint, err)
	}
	took := time.Since(start)
	id := rn.r.ID
	// The messages are on the sink's topic whatever became of the events.
	n := float64(len(msgs))
	rn.e.metrics.received.WithLabelValues(id).Add(n)
	rn.e.metrics.deliveries.WithLabelValues(id, s.name, "sent").Add(n)
	rn.e.metrics.handled.WithLabelValues(id, "ok").Add(n)
	h := rn.e.metrics.duration.WithLabelValues(id)
	for i := range msgs {
		m := &msgs[i]
		h.Observe(took.Seconds())
		rn.event(monitor.Sent, monitor.OK, m, func(ev *monitor.Event) {
			ev.Direction = monitor.Outbound
			ev.Channel = s.kind
			ev.Attempt = 1
			ev.Duration = took
			ev.Bytes = int64(len(m.Body))
			ev.Attrs = map[string]string{"sink": s.name}
		})
	}
	if derr != nil {
		// A resend is recognised by its idempotency key downstream and
		// its events kept then.
		return fmt.Errorf("route %s: received events not durable: %w", id, derr)
	}
	return nil
}

// keys sets a message's ordering and idempotency keys from the route's
// expressions; without an idempotency key from the expression or the source,
// the key is a digest of the body.
func (rn *runner) keys(m *bus.Message) error {
	if m.Headers == nil {
		m.Headers = map[string]string{}
	}
	if rn.keyP != nil || rn.idemP != nil {
		ms := &msgState{msg: *m}
		env := newEnv(ms, rn.r.Vars)
		if rn.keyP != nil {
			k, err := rn.keyP.string(env)
			if err != nil {
				return connectors.Permanent(fmt.Errorf("route %s: key: %w", rn.r.ID, err))
			}
			m.Key = k
		}
		if rn.idemP != nil {
			k, err := rn.idemP.string(env)
			if err != nil {
				return connectors.Permanent(fmt.Errorf("route %s: idempotency key: %w", rn.r.ID, err))
			}
			m.IdempotencyKey = k
		}
	}
	if m.IdempotencyKey == "" {
		sum := sha256.Sum256(m.Body)
		m.IdempotencyKey = hex.EncodeToString(sum[:16])
	}
	return nil
}

// release frees a backlog token (never blocks: messages published before a
// restart have no token).
func (rn *runner) release() {
	select {
	case <-rn.backlog:
	default:
	}
}

// start attaches the consumer and starts the source. The deliveries run on
// a context of their own: cancelling parent stops the intake, and the
// deliveries in flight finish unless stop cuts them at its deadline.
func (rn *runner) start(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	work, cut := context.WithCancel(context.WithoutCancel(parent))
	rn.cancel, rn.cut = cancel, cut
	rn.done = make(chan struct{})
	dl := time.Minute
	var total time.Duration
	for _, s := range rn.sinks {
		total += s.timeout
	}
	if 2*total > dl {
		dl = 2 * total
	}
	sub, err := rn.e.deps.Bus.Subscribe(ctx, bus.SubscribeOptions{
		Topic:              rn.topic,
		Subscription:       "routes." + rn.r.ID,
		MaxDeliveries:      rn.r.Errors.MaxAttempts + 2,
		DeadLetterTopic:    rn.topic + ".dlq",
		ProcessingDeadline: dl,
		Prefetch:           rn.r.Concurrency * 2,
	})
	if err != nil {
		cancel()
		cut()
		return fmt.Errorf("route %s: subscribe %s: %w", rn.r.ID, rn.topic, err)
	}
	dlq, err := rn.e.deps.Bus.Subscribe(ctx, bus.SubscribeOptions{
		Topic: rn.topic + ".dlq", Subscription: "routes." + rn.r.ID + ".dlq", ProcessingDeadline: time.Minute, Prefetch: 4,
	})
	if err != nil {
		cancel()
		cut()
		_ = sub.Close(context.Background())
		return fmt.Errorf("route %s: subscribe %s.dlq: %w", rn.r.ID, rn.topic, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < rn.r.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rn.consume(ctx, work, sub)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rn.consumeBusDLQ(ctx, dlq)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		rn.maintain(ctx)
	}()
	if rn.source != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rn.runSource(ctx)
		}()
	}
	if rn.sched != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rn.runSchedule(ctx)
		}()
	}
	close(rn.running)
	go func() {
		wg.Wait()
		cut()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = sub.Close(cctx)
		_ = dlq.Close(cctx)
		close(rn.done)
	}()
	return nil
}

// stopIntake stops taking new deliveries (and the source); the deliveries
// in flight go on.
func (rn *runner) stopIntake() {
	if rn.cancel != nil {
		rn.cancel()
	}
}

// stop stops taking new deliveries and waits for those in flight until
// ctx is done; then it cuts them (a delivery cut after its request left is
// in doubt: its claim stays, the next attempt asks the partner) and waits a
// little for them to give up.
func (rn *runner) stop(ctx context.Context) error {
	if rn.cancel == nil {
		return nil
	}
	rn.cancel()
	select {
	case <-rn.done:
		return nil
	case <-ctx.Done():
	}
	rn.cut()
	grace := time.NewTimer(5 * time.Second)
	defer grace.Stop()
	select {
	case <-rn.done:
		return fmt.Errorf("route %s: stop: deliveries in flight cut at the deadline (%w); those sent are in doubt", rn.r.ID, ctx.Err())
	case <-grace.C:
		return fmt.Errorf("route %s: stop: %w", rn.r.ID, ctx.Err())
	}
}

// runSource runs the source, restarting it after a failure with a pause.
func (rn *runner) runSource(ctx context.Context) {
	for {
		err := rn.source.Run(ctx, rn.emit)
		if ctx.Err() != nil {
			return
		}
		rn.log.Error("source stopped; restarting in 5s", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-rn.e.clock.After(5 * time.Second):
		}
	}
}

func (rn *runner) runSchedule(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-rn.e.clock.After(rn.sched.Every):
			h := map[string]string{"mzhub-scheduled-at": t.UTC().Format(time.RFC3339Nano)}
			for k, v := range rn.sched.Headers {
				h[k] = v
			}
			msg := bus.Message{Headers: h, Body: []byte(rn.sched.Body), IdempotencyKey: rn.r.ID + "@" + t.UTC().Format(time.RFC3339Nano)}
			if err := rn.emit(ctx, msg); err != nil && ctx.Err() == nil {
				rn.log.Error("schedule: emit", "err", err)
			}
		}
	}
}

// maintain completes timed-out aggregates and republishes leftovers.
func (rn *runner) maintain(ctx context.Context) {
	if len(rn.aggs) == 0 {
		return
	}
	for {
		for _, a := range rn.aggs {
			if err := a.flushExpired(ctx); err != nil && ctx.Err() == nil {
				rn.log.Error("aggregate: flush", "step", a.n, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-rn.e.clock.After(time.Second):
		}
	}
}

// consume takes deliveries until intake is done and handles them on work.
func (rn *runner) consume(intake, work context.Context, sub bus.Subscription) {
	ctx := intake
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return
			}
			rn.log.Error("receive", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if ctx.Err() != nil {
			// Stopping: a delivery taken as the intake stopped is not
			// started; closing the subscription hands it back.
			return
		}
		rn.handle(work, d)
	}
}

// handle runs the steps and sinks for one delivery and settles it.
func (rn *runner) handle(ctx context.Context, d bus.Delivery) {
	start := time.Now()
	msg := d.Message()
	if rn.r.From.Kind == kindBus && msg.Headers[HeaderResumeStep] == "" {
		// Messages of a bus source did not pass through emit.
		if err := rn.keys(&msg); err != nil {
			rn.deadLetter(context.WithoutCancel(ctx), msg, d.Attempt(), err)
			rn.ack(context.WithoutCancel(ctx), d)
			return
		}
	}
	m := &msgState{msg: msg, attempt: d.Attempt()}
	from := 0
	if s := msg.Headers[HeaderResumeStep]; s != "" {
		from, _ = strconv.Atoi(s)
	}
	err := rn.process(ctx, m, from)
	if ctx.Err() != nil && err != nil {
		// Cut by a stop's deadline: leave the delivery to be redelivered
		// (a claim in doubt stays; the redelivery asks the partner).
		return
	}
	settle := context.WithoutCancel(ctx)
	id := rn.r.ID
	switch {
	case err == nil || errors.Is(err, errConsumed):
		rn.ack(settle, d)
		rn.e.metrics.handled.WithLabelValues(id, "ok").Inc()
	case errors.Is(err, ErrFiltered):
		rn.ack(settle, d)
		rn.e.metrics.handled.WithLabelValues(id, "filtered").Inc()
		rn.event(monitor.Dropped, monitor.OK, &msg, nil)
	case isPermanent(err) || d.Attempt() >= rn.r.Errors.MaxAttempts:
		rn.deadLetter(settle, msg, d.Attempt(), err)
		rn.ack(settle, d)
		rn.e.metrics.handled.WithLabelValues(id, "dead_lettered").Inc()
	default:
		delay := rn.backoff(d.Attempt())
		if nerr := d.Nack(settle, delay, err); nerr != nil {
			rn.log.Error("nack", "err", nerr)
		}
		rn.e.metrics.handled.WithLabelValues(id, "retried").Inc()
		rn.event(monitor.Retried, monitor.Warning, &msg, func(ev *monitor.Event) {
			ev.Attempt = d.Attempt()
			setError(ev, err)
			ev.Attrs = map[string]string{"retry_in": delay.String()}
		})
	}
	rn.e.metrics.duration.WithLabelValues(id).Observe(time.Since(start).Seconds())
}

func (rn *runner) ack(ctx context.Context, d bus.Delivery) {
	if err := d.Ack(ctx); err != nil {
		rn.log.Error("ack", "err", err)
	}
	rn.release()
}

// isPermanent reports whether retrying cannot help: a step's error, a
// permanent sink error, a delivery in doubt that cannot be resolved.
func isPermanent(err error) bool {
	var de *doubtError
	if errors.As(err, &de) {
		return de.final
	}
	var se *stepError
	return errors.As(err, &se) || errors.Is(err, connectors.ErrPermanent) || errors.Is(err, ErrInDoubt)
}

// backoff is the delay before attempt+1: exponential, capped, with jitter.
func (rn *runner) backoff(attempt int) time.Duration {
	return backoffDelay(rn.r.Errors, attempt, rand.Float64())
}

func backoffDelay(p ErrorPolicy, attempt int, u float64) time.Duration {
	d := p.Backoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	j := 0.0
	if p.Jitter != nil {
		j = *p.Jitter
	}
	// u in [0,1): the delay moves by up to ±j of itself.
	d = time.Duration(float64(d) * (1 + j*(2*u-1)))
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	if d < 0 {
		d = 0
	}
	return d
}

// process runs steps from index from, then the sinks.
func (rn *runner) process(ctx context.Context, m *msgState, from int) error {
	return rn.stepAt(ctx, m, from)
}

func (rn *runner) stepAt(ctx context.Context, m *msgState, i int) error {
	if i >= len(rn.steps) {
		return rn.deliver(ctx, m)
	}
	s := rn.steps[i]
	err := s.process(ctx, m, func(ctx context.Context, m2 *msgState) error {
		switch s.kind() {
		case "map", "split", "enrich":
			rn.event(monitor.Transformed, monitor.OK, &m2.msg, func(ev *monitor.Event) { ev.Stage = s.name(); ev.Bytes = int64(len(m2.msg.Body)) })
		case "validate":
			rn.event(monitor.Validated, monitor.OK, &m2.msg, func(ev *monitor.Event) { ev.Stage = s.name() })
		}
		return rn.stepAt(ctx, m2, i+1)
	})
	var se *stepError
	if errors.As(err, &se) && se.step == s.name() {
		typ := monitor.Failed
		if s.kind() == "validate" {
			typ = monitor.Rejected
		}
		rn.event(typ, monitor.Error, &m.msg, func(ev *monitor.Event) { ev.Stage = s.name(); setError(ev, err) })
	}
	return err
}

// deliver sends m to its sinks, consulting the ledger so that a sink never
// receives one idempotency key twice.
func (rn *runner) deliver(ctx context.Context, m *msgState) error {
	for _, s := range rn.sinks {
		if m.targets != nil && !contains(m.targets, s.name) {
			continue
		}
		if err := rn.deliverOne(ctx, s, m); err != nil {
			return &sinkError{sink: s.name, endpoint: s.endpoint, err: err}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (rn *runner) deliverOne(ctx context.Context, s *sinkRT, m *msgState) error {
	id, idem := rn.r.ID, m.msg.IdempotencyKey
	// One delivery of a key at a time in this process: a second one (a
	// redelivery racing a slow first attempt) waits for a retry.
	fk := s.name + "\x00" + idem
	rn.inflightMu.Lock()
	if _, busy := rn.inflight[fk]; busy {
		rn.inflightMu.Unlock()
		return fmt.Errorf("delivery of this key already in flight")
	}
	rn.inflight[fk] = struct{}{}
	rn.inflightMu.Unlock()
	defer func() {
		rn.inflightMu.Lock()
		delete(rn.inflight, fk)
		rn.inflightMu.Unlock()
	}()

	l := rn.ledger
	var state string
	switch {
	case !s.idempotent:
		// The claim is durable before the partner sees anything.
		st, err := l.do(ctx, opClaim, id, s.name, idem)
		if err != nil {
			return err
		}
		state = st
	case m.attempt > 1 || m.msg.Headers["mzhub-replay-of"] != "":
		// A redelivery to an idempotent sink: skip it if it is known done
		// (a first delivery goes straight out; the partner ignores repeats).
		st, err := l.do(ctx, opCheck, id, s.name, idem)
		if err != nil {
			return err
		}
		state = st
	}
	switch state {
	case stateDone:
		rn.e.metrics.deliveries.WithLabelValues(id, s.name, "duplicate_skipped").Inc()
		return nil
	case statePending:
		if !s.idempotent {
			// A previous delivery started and its outcome is unknown.
			settled, err := rn.resolveDoubt(ctx, s, m)
			if err != nil || settled {
				return err
			}
			// Not delivered (or resending is allowed): we still hold the
			// pending claim; send.
		}
	}
	if rn.lim != nil {
		if err := rn.lim.Wait(ctx); err != nil {
			if !s.idempotent {
				_, _ = l.do(context.WithoutCancel(ctx), opRelease, id, s.name, idem)
			}
			return err
		}
	}
	t0 := time.Now()
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	var answer bus.Message
	var err error
	if s.replier != nil {
		answer, err = s.replier.Reply(sctx, m.msg)
	} else {
		err = s.sink.Send(sctx, m.msg)
	}
	cancel()
	if err == nil && s.replier != nil {
		// The partner answered: the answer is published before the
		// delivery is recorded done. A failure (or a crash) here leaves the
		// claim pending; the next attempt fetches the answer by key
		// (AnswerChecker) instead of asking again.
		if perr := rn.publishReply(ctx, m.msg, answer, ReplyViaSend); perr != nil {
			err = connectors.InDoubt(perr)
			if s.idempotent {
				err = perr
			}
		}
	}
	if err != nil {
		doubt := !s.idempotent && ambiguous(err)
		if !s.idempotent && !doubt {
			// A known failure is not in doubt: forget the claim. (A crash
			// right here leaves it pending; the next attempt asks the sink.)
			if _, rerr := l.do(context.WithoutCancel(ctx), opRelease, id, s.name, idem); rerr != nil {
				rn.log.Error("ledger release", "err", rerr)
			}
		}
		if doubt {
			// The partner may have it: keep the claim. The next attempt
			// asks the status endpoint; without one, it is dead-lettered
			// now (never sent again blindly) unless the route opted into
			// resending.
			err = &doubtError{code: CodeInDoubtSend, final: s.checker == nil && !s.resendInDoubt, err: err}
			rn.e.metrics.inDoubt.WithLabelValues(id, s.name, "parked").Inc()
		}
		rn.e.metrics.deliveries.WithLabelValues(id, s.name, "failed").Inc()
		st := monitor.Error
		if doubt {
			st = monitor.Warning
		}
		rn.event(monitor.Failed, st, &m.msg, func(ev *monitor.Event) {
			ev.Direction = monitor.Outbound
			ev.Channel = s.kind
			ev.Attempt = m.attempt
			ev.Duration = time.Since(t0)
			ev.Attrs = map[string]string{"sink": s.name, "endpoint": s.endpoint}
			if doubt {
				ev.Attrs["in_doubt"] = "true"
			}
			setError(ev, err)
		})
		return err
	}
	if s.idempotent || s.checker != nil {
		// Losing this record in a crash is safe (see ledger.post).
		l.post(opDone, id, s.name, idem)
	} else if _, err := l.do(context.WithoutCancel(ctx), opDone, id, s.name, idem); err != nil {
		return fmt.Errorf("delivered but not recorded: %w", err)
	}
	rn.e.metrics.deliveries.WithLabelValues(id, s.name, "sent").Inc()
	rn.event(monitor.Sent, monitor.OK, &m.msg, func(ev *monitor.Event) {
		ev.Direction = monitor.Outbound
		ev.Channel = s.kind
		ev.Attempt = m.attempt
		ev.Duration = time.Since(t0)
		ev.Bytes = int64(len(m.msg.Body))
		ev.Attrs = map[string]string{"sink": s.name}
	})
	return nil
}

// resolveDoubt decides a delivery whose claim is pending (a previous
// attempt's outcome is unknown): it asks the sink's status endpoint.
// Delivered settles it without sending (settled true); not delivered lets
// the caller send (settled false, nil); no answer keeps it in doubt for a
// later attempt (a doubtError, dead-lettered at the last attempt). A sink
// that cannot be asked dead-letters it as in doubt, unless the route allows
// resending.
func (rn *runner) resolveDoubt(ctx context.Context, s *sinkRT, m *msgState) (bool, error) {
	id, idem := rn.r.ID, m.msg.IdempotencyKey
	if s.checker == nil {
		if s.resendInDoubt {
			rn.e.metrics.inDoubt.WithLabelValues(id, s.name, "resent_unchecked").Inc()
			rn.log.Warn("delivery in doubt sent again without a status check (resend_in_doubt)", "sink", s.name)
			return false, nil
		}
		return false, &doubtError{code: CodeInDoubtUnchecked, final: true,
			err: fmt.Errorf("a previous delivery started and its outcome is unknown; %s cannot be asked (no status endpoint)", s.endpoint)}
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	var answer bus.Message
	var ok bool
	var err error
	if s.answers != nil {
		answer, ok, err = s.answers.Answer(cctx, m.msg)
	} else {
		ok, err = s.checker.Delivered(cctx, m.msg)
	}
	cancel()
	if err == nil && ok && s.answers != nil {
		// The partner has it and its answer: publish that, ask nothing.
		if perr := rn.publishReply(ctx, m.msg, answer, ReplyViaLookup); perr != nil {
			err = perr
		}
	}
	if err != nil {
		rn.e.metrics.inDoubt.WithLabelValues(id, s.name, "status_unknown").Inc()
		return false, &doubtError{code: CodeInDoubtStatusUnknown, err: fmt.Errorf("status query: %w", err)}
	}
	if !ok {
		rn.e.metrics.inDoubt.WithLabelValues(id, s.name, "not_delivered").Inc()
		return false, nil
	}
	if _, err := rn.ledger.do(context.WithoutCancel(ctx), opDone, id, s.name, idem); err != nil {
		return false, err
	}
	rn.e.metrics.inDoubt.WithLabelValues(id, s.name, "delivered").Inc()
	rn.e.metrics.deliveries.WithLabelValues(id, s.name, "duplicate_skipped").Inc()
	rn.event(monitor.Reconciled, monitor.OK, &m.msg, func(ev *monitor.Event) {
		ev.Direction = monitor.Outbound
		ev.Channel = s.kind
		ev.Attempt = m.attempt
		ev.Attrs = map[string]string{"sink": s.name, "endpoint": s.endpoint, "in_doubt": "delivered"}
	})
	return true, nil
}

// Codes of a delivery in doubt, in events (ErrorCode, with ErrorClass
// "in_doubt") and in the dead letters' errors.
const (
	// CodeInDoubtSend: the send timed out, was cancelled or lost its
	// connection after the request was written.
	CodeInDoubtSend = "in_doubt_send"
	// CodeInDoubtStatusUnknown: the partner's status endpoint did not
	// answer (unreachable, an error): the outcome is still unknown.
	CodeInDoubtStatusUnknown = "in_doubt_status_unknown"
	// CodeInDoubtUnchecked: the sink has no status endpoint to ask.
	CodeInDoubtUnchecked = "in_doubt_unchecked"
)

// doubtError is a delivery in doubt. A final one is dead-lettered at once;
// otherwise the delivery is retried (the next attempt asks the status
// endpoint) and dead-lettered, in doubt, after the last attempt.
type doubtError struct {
	code  string
	final bool
	err   error
}

func (e *doubtError) Error() string {
	return "delivery in doubt (" + e.code + "): " + e.err.Error()
}
func (e *doubtError) Unwrap() error        { return e.err }
func (e *doubtError) Is(target error) bool { return target == ErrInDoubt }

// ambiguous reports whether a failed send may have reached the partner: the
// sink says so (connectors.ErrInDoubt), or it ended by a deadline or a
// cancel that the sink does not mark as before sending (connectors.ErrNotSent).
func ambiguous(err error) bool {
	if errors.Is(err, connectors.ErrInDoubt) {
		return true
	}
	if errors.Is(err, connectors.ErrNotSent) || errors.Is(err, connectors.ErrPermanent) {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// deadLetter stores the original message with the error, the attempts and
// the failing endpoint.
func (rn *runner) deadLetter(ctx context.Context, msg bus.Message, attempts int, cause error) {
	sink, endpoint, stepName := "", "", ""
	var se *sinkError
	if errors.As(cause, &se) {
		sink, endpoint = se.sink, se.endpoint
	}
	var ste *stepError
	if errors.As(cause, &ste) {
		stepName = ste.step
	}
	if rn.r.ReplyTo != "" {
		// The requester waits for an answer: tell it the request failed.
		rn.publishFailure(ctx, msg, cause)
	}
	if !*rn.r.Errors.DeadLetter {
		rn.event(monitor.Dropped, monitor.Error, &msg, func(ev *monitor.Event) { ev.Attempt = attempts; setError(ev, cause) })
		return
	}
	if err := rn.e.dlq.add(ctx, rn.r.ID, sink, stepName, endpoint, cause, attempts, msg); err != nil {
		rn.log.Error("dead letter: store", "err", err)
	}
	if errors.Is(cause, ErrInDoubt) {
		rn.e.metrics.inDoubt.WithLabelValues(rn.r.ID, sink, "dead_lettered").Inc()
	}
	rn.event(monitor.DeadLettered, monitor.Error, &msg, func(ev *monitor.Event) {
		ev.Attempt = attempts
		setError(ev, cause)
		ev.Attrs = map[string]string{"sink": sink, "endpoint": endpoint, "step": stepName}
	})
}

// consumeBusDLQ records messages the bus itself dead-lettered (a message
// that kept the process from settling it, e.g. a crash while handling it).
func (rn *runner) consumeBusDLQ(ctx context.Context, sub bus.Subscription) {
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		msg := d.Message()
		attempts, _ := strconv.Atoi(msg.Headers[bus.HeaderDeadLetterAttempts])
		cause := errors.New(msg.Headers[bus.HeaderDeadLetterCause])
		if msg.Headers[bus.HeaderDeadLetterCause] == "" {
			cause = errors.New("bus: delivery attempts exhausted")
		}
		clean := msg
		clean.Headers = map[string]string{}
		for k, v := range msg.Headers {
			switch k {
			case bus.HeaderDeadLetterCause, bus.HeaderDeadLetterAttempts, bus.HeaderDeadLetterTopic, bus.HeaderDeadLetterAt:
			default:
				clean.Headers[k] = v
			}
		}
		if clean.IdempotencyKey == "" {
			_ = rn.keys(&clean)
		}
		rn.deadLetter(context.WithoutCancel(ctx), clean, attempts, rn.unsettled(context.WithoutCancel(ctx), clean, cause))
		if err := d.Ack(context.WithoutCancel(ctx)); err != nil {
			rn.log.Error("ack dead letter", "err", err)
		}
		rn.release()
	}
}

// unsettled marks cause in doubt when a sink still holds a pending claim of
// msg (a delivery cut or crashed until the bus gave up on it): its dead
// letter is then in doubt, and a replay asks the partner before sending.
func (rn *runner) unsettled(ctx context.Context, msg bus.Message, cause error) error {
	for _, s := range rn.sinks {
		if s.idempotent {
			continue
		}
		st, err := rn.ledger.do(ctx, opCheck, rn.r.ID, s.name, msg.IdempotencyKey)
		if err != nil || st != statePending {
			continue
		}
		code := CodeInDoubtSend
		if s.checker == nil {
			code = CodeInDoubtUnchecked
		}
		return &sinkError{sink: s.name, endpoint: s.endpoint, err: &doubtError{code: code, final: true, err: cause}}
	}
	return cause
}

// event emits a monitor event about msg.
func (rn *runner) event(t monitor.EventType, st monitor.Status, msg *bus.Message, fill func(*monitor.Event)) {
	rn.e.events.Emit(rn.newEvent(t, st, msg, fill))
}

// newEvent is the monitor event about msg.
func (rn *runner) newEvent(t monitor.EventType, st monitor.Status, msg *bus.Message, fill func(*monitor.Event)) monitor.Event {
	ev := monitor.Event{
		Time:        rn.e.clock.Now(),
		Partner:     rn.r.Partner,
		Flow:        rn.r.Flow,
		Direction:   monitor.Internal,
		Channel:     "bus",
		Type:        t,
		Status:      st,
		ExchangeID:  mask.Text(msg.IdempotencyKey),
		BusinessKey: mask.Text(msg.Key),
		Component:   "routes/" + rn.r.ID,
		Node:        rn.e.cfg.Node,
	}
	if p := msg.Headers["mzhub-parent-id"]; p != "" {
		ev.ParentIDs = []string{p}
	}
	if fill != nil {
		fill(&ev)
	}
	return ev
}

// setError fills the error fields of an event, masked.
func setError(ev *monitor.Event, err error) {
	if err == nil {
		return
	}
	ev.ErrorMessage = mask.Text(err.Error())
	var de *doubtError
	if errors.As(err, &de) {
		ev.ErrorCode = de.code
	}
	switch {
	case errors.Is(err, ErrInDoubt):
		ev.ErrorClass = "in_doubt"
	case isPermanent(err):
		ev.ErrorClass = "permanent"
	case errors.Is(err, context.DeadlineExceeded):
		ev.ErrorClass = "timeout"
	default:
		ev.ErrorClass = "transient"
	}
}

// encodeMessage and decodeMessage store a bus message as JSON text.
func encodeMessage(m bus.Message) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func decodeMessage(s string) (bus.Message, error) {
	var m bus.Message
	err := json.Unmarshal([]byte(s), &m)
	return m, err
}
