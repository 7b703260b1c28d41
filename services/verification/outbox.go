package verification

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Call states. queued: not sent; sending: asked, outcome unknown until the
// partner answers or is asked by key (in doubt after a crash or timeout);
// waiting: accepted by an asynchronous partner, polled by key; review:
// answered and sampled for manual review; answered, rejected, late and
// failed are final.
const (
	StateQueued   = "queued"
	StateSending  = "sending"
	StateWaiting  = "waiting"
	StateReview   = "review"
	StateAnswered = "answered"
	StateRejected = "rejected"
	StateLate     = "late"
	StateFailed   = "failed"
)

const openStates = `('queued', 'sending', 'waiting')`

type callRow struct {
	ID                                    int64
	RequestID, Partner, Scope, Key, State string
	Attempts, Asks, Lookups               int
	NextMS, DeadlineMS, CreatedMS, SentMS int64
	AnsweredMS                            int64
	PartnerRef, Quality, Reason, Reviewer string
	Sampled                               bool
	Answer                                []byte
}

const callCols = `id, request_id, partner, scope, idem_key, state, attempts, asks, lookups, next_ms, deadline_ms, created_ms, sent_ms, answered_ms, partner_ref, quality, reason, sampled, reviewer, answer`

func scanCall(sc interface{ Scan(...any) error }) (callRow, error) {
	var c callRow
	var sampled int
	err := sc.Scan(&c.ID, &c.RequestID, &c.Partner, &c.Scope, &c.Key, &c.State, &c.Attempts, &c.Asks, &c.Lookups, &c.NextMS, &c.DeadlineMS,
		&c.CreatedMS, &c.SentMS, &c.AnsweredMS, &c.PartnerRef, &c.Quality, &c.Reason, &sampled, &c.Reviewer, &c.Answer)
	c.Sampled = sampled != 0
	return c, err
}

// Run works the outbox until ctx is done: a dispatcher per partner
// publishing the calls onto the partners' ask topics (the routes of
// configs/routes/verification*.yaml deliver them), the consumer of the
// answers, the deadline sweep, the inbound requests of other provinces and
// the quality reports. Calls an earlier run left published are published
// again under the same keys: a route delivers a key once, settles one in
// doubt by the partner's lookup, and a call takes one answer.
func (s *Service) Run(ctx context.Context) error {
	db := s.deps.DB
	// This process owns the outbox now (one replica runs it, under a
	// lease): what an earlier run left published is due again.
	if _, err := db.ExecContext(ctx, db.Rebind(`UPDATE verif_calls SET next_ms = ? WHERE state = 'sending'`), ms(s.clock.Now())); err != nil {
		return fmt.Errorf("verification: resume: %w", err)
	}
	// A crash between a call's last answer and its request's finalisation
	// leaves a request open with nothing open under it.
	if err := s.finalizeStranded(ctx); err != nil {
		return fmt.Errorf("verification: resume: %w", err)
	}
	sub, err := s.deps.Bus.Subscribe(ctx, bus.SubscribeOptions{Topic: TopicAnswers, Subscription: "verification.answers",
		ProcessingDeadline: time.Minute, Prefetch: 8 * answerWorkers})
	if err != nil {
		return fmt.Errorf("verification: subscribe %s: %w", TopicAnswers, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = sub.Close(cctx)
	}()
	var wg sync.WaitGroup
	for range answerWorkers {
		wg.Go(func() { s.consumeAnswers(ctx, sub) })
	}
	for _, id := range s.order {
		wg.Go(func() { s.dispatch(ctx, id) })
	}
	wg.Go(func() { s.sweepLoop(ctx) })
	// Other provinces' requests and the outcomes of the answers returned.
	for _, t := range []struct {
		topic string
		apply func(context.Context, bus.Message) error
	}{{TopicInbound, s.applyInbound}, {TopicReturned, s.applyReturned}} {
		tsub, err := s.deps.Bus.Subscribe(ctx, bus.SubscribeOptions{Topic: t.topic, Subscription: t.topic, ProcessingDeadline: time.Minute, Prefetch: 8})
		if err != nil {
			return fmt.Errorf("verification: subscribe %s: %w", t.topic, err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = tsub.Close(cctx)
		}()
		wg.Go(func() { s.consume(ctx, tsub, t.topic, t.apply) })
	}
	wg.Go(func() { s.returnLoop(ctx) })
	if s.cfg.ReportEvery > 0 {
		wg.Go(func() { s.reportLoop(ctx) })
	}
	wg.Wait()
	return nil
}

// answerWorkers is how many answers are applied at once.
const answerWorkers = 4

// dispatch publishes one partner's due calls.
func (s *Service) dispatch(ctx context.Context, partner string) {
	for ctx.Err() == nil {
		rows, err := s.due(ctx, partner, 4*s.cfg.Concurrency)
		if err != nil && ctx.Err() == nil {
			s.log.Error("verification outbox read failed", "partner", partner, "err", err)
		}
		for _, c := range rows {
			s.process(ctx, c)
		}
		if len(rows) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-s.wake[partner]:
		case <-s.clock.After(s.cfg.Tick):
		}
	}
}

func (s *Service) due(ctx context.Context, partner string, limit int) ([]callRow, error) {
	db := s.deps.DB
	rows, err := db.QueryContext(ctx, db.Rebind(`SELECT `+callCols+` FROM verif_calls
		WHERE partner = ? AND state IN `+openStates+` AND next_ms <= ? ORDER BY next_ms LIMIT ?`), partner, ms(s.clock.Now()), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []callRow
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// askKey is the bus idempotency key of a call's ask: the call's key, and a
// new one for each ask after the first (a partner that lost an accepted
// query is asked again; the route must not take that for a redelivery).
func askKey(c callRow, attempts int) string {
	if attempts <= 1 {
		return c.Key
	}
	return fmt.Sprintf("%s:ask%d", c.Key, attempts)
}

// process publishes what a due call needs: its ask (queued; or, after a
// restart or a failed publish, again under the same key), or a poll of an
// asynchronous partner's answer (waiting).
func (s *Service) process(ctx context.Context, c callRow) {
	r, _, err := s.loadRequest(ctx, c.RequestID)
	if err != nil {
		s.log.Error("verification call without its request", "call", c.Key, "err", err)
		return
	}
	q := household.Query{Key: c.Key, RequestID: c.RequestID, Scope: c.Scope, Authorization: r.Authorization, Members: scoped(r.Members, c.Scope), PartnerRef: c.PartnerRef}
	now := s.clock.Now()
	op, key, attempt := household.OpAsk, askKey(c, c.Attempts), c.Attempts
	switch c.State {
	case StateQueued:
		// The next ask: a new key after the first.
		attempt = c.Attempts + 1
		key = askKey(c, attempt)
		if !s.mark(ctx, c, StateQueued, `state = 'sending', attempts = attempts + 1, asks = asks + 1, sent_ms = ?, next_ms = ?`, ms(now), c.DeadlineMS) {
			return
		}
		s.emit(monitor.Event{Type: monitor.Sent, Status: monitor.OK, Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Outbound,
			Channel: s.channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, Attempt: attempt, Records: int64(len(q.Members))})
		s.metrics.calls.WithLabelValues(c.Partner, "ask").Inc()
	case StateSending:
		// Published before (a restart, a failed publish): the same key.
		if !s.mark(ctx, c, StateSending, `next_ms = ?`, c.DeadlineMS) {
			return
		}
	case StateWaiting:
		op, key = household.OpLookup, fmt.Sprintf("%s:poll%d", c.Key, c.Lookups+1)
		if !s.mark(ctx, c, StateWaiting, `lookups = lookups + 1, next_ms = ?`, ms(now.Add(s.cfg.PollEvery))) {
			return
		}
		s.metrics.calls.WithLabelValues(c.Partner, "lookup").Inc()
	default:
		return
	}
	body, err := json.Marshal(q)
	if err != nil {
		s.log.Error("verification query", "call", c.Key, "err", err)
		return
	}
	msg := bus.Message{Key: c.RequestID, IdempotencyKey: key, Body: body, Headers: map[string]string{
		household.HeaderPartner: c.Partner, household.HeaderOp: op, household.HeaderCall: c.Key}}
	if err := s.pub.Publish(ctx, AskTopic(c.Partner), msg); err != nil {
		if ctx.Err() != nil {
			return
		}
		// Published again after a wait, under the same key.
		s.log.Warn("verification ask not published", "call", c.Key, "err", err)
		st := StateSending
		if c.State == StateWaiting {
			st = StateWaiting
		}
		s.mark(ctx, callRow{ID: c.ID}, st, `next_ms = ?`, ms(s.clock.Now().Add(s.cfg.RetryWait)))
	}
}

// consumeAnswers applies the partners' answers the routes publish.
func (s *Service) consumeAnswers(ctx context.Context, sub bus.Subscription) {
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return
			}
			s.log.Error("verification answers: receive", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-s.clock.After(time.Second):
			}
			continue
		}
		settle := context.WithoutCancel(ctx)
		if err := s.applyAnswer(ctx, d.Message()); err != nil {
			if ctx.Err() != nil {
				return // redelivered to the next run
			}
			s.log.Error("verification answer not applied; retried", "err", err)
			_ = d.Nack(settle, s.cfg.RetryWait, err)
			continue
		}
		if err := d.Ack(settle); err != nil {
			s.log.Error("verification answers: ack", "err", err)
		}
	}
}

// applyAnswer applies one answer to its call, when the call is still open.
// An answer to a closed call (late, already answered: a redelivery) is
// ignored, so each call takes one answer.
func (s *Service) applyAnswer(ctx context.Context, msg bus.Message) error {
	key := msg.Headers[household.HeaderCall]
	db := s.deps.DB
	c, err := scanCall(db.QueryRowContext(ctx, db.Rebind(`SELECT `+callCols+` FROM verif_calls WHERE idem_key = ?`), key))
	if errors.Is(err, sql.ErrNoRows) {
		s.log.Warn("verification answer to no call (dropped)", "call", mask.Text(key))
		return nil
	}
	if err != nil {
		return err
	}
	if c.State != StateSending && c.State != StateWaiting {
		return nil
	}
	r, _, err := s.loadRequest(ctx, c.RequestID)
	if err != nil {
		return err
	}
	q := household.Query{Key: c.Key, RequestID: c.RequestID, Scope: c.Scope, Authorization: r.Authorization, Members: scoped(r.Members, c.Scope), PartnerRef: c.PartnerRef}
	took := s.clock.Now().Sub(fromMS(c.SentMS))
	if msg.Headers[routes.HeaderReplyVia] == routes.ReplyViaLookup {
		// A delivery in doubt settled by the partner's answer under the key.
		if !s.mark(ctx, c, c.State, `lookups = lookups + 1`) {
			return nil
		}
		c.Lookups++
	}
	if msg.Headers[routes.HeaderReplyStatus] == routes.ReplyFailed {
		class, reason := msg.Headers[routes.HeaderReplyClass], msg.Headers[routes.HeaderReplyError]
		if class == "transient" && s.clock.Now().Before(fromMS(c.DeadlineMS)) {
			// The route gave up on failures before anything reached the
			// partner (or answers it refused): asked again under a new bus
			// key; the partner keeps one answer per call key.
			if s.mark(ctx, c, c.State, `state = 'queued', next_ms = ?, reason = ?`, ms(s.clock.Now().Add(s.cfg.RetryWait)), mask.Text(reason)) {
				s.metrics.outcomes.WithLabelValues(c.Partner, "retry").Inc()
				s.emit(monitor.Event{Type: monitor.Retried, Status: monitor.Warning, Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Outbound,
					Channel: s.channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, Attempt: c.Attempts + 1, ErrorClass: class, ErrorMessage: mask.Text(reason)})
			}
			return nil
		}
		s.finish(ctx, c, r, c.State, StateFailed, nil, nil, mask.Text(fmt.Sprintf("%s (%s)", reason, class)), took)
		return nil
	}
	var rep household.Reply
	if err := json.Unmarshal(msg.Body, &rep); err != nil {
		s.finish(ctx, c, r, c.State, StateRejected, nil, []string{"format"}, "the answer on the bus is not readable: "+mask.Text(err.Error()), took)
		return nil
	}
	switch {
	case rep.BadAnswer != "":
		s.finish(ctx, c, r, c.State, StateRejected, nil, []string{"format"}, rep.BadAnswer, took)
	case !rep.Found || rep.Answer == nil:
		// The partner lost a query it had accepted: asked again, anew.
		err := fmt.Errorf("%s lost the accepted query %s", c.Partner, c.PartnerRef)
		if s.mark(ctx, c, c.State, `state = 'queued', next_ms = ?, reason = ?`, ms(s.clock.Now().Add(s.cfg.RetryWait)), err.Error()) {
			s.metrics.outcomes.WithLabelValues(c.Partner, "retry").Inc()
			s.emit(monitor.Event{Type: monitor.Retried, Status: monitor.Warning, Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Outbound,
				Channel: s.channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, Attempt: c.Attempts + 1, ErrorClass: "transient", ErrorMessage: mask.Text(err.Error())})
			s.poke(c.Partner)
		}
	case rep.Answer.Pending:
		if c.State == StateWaiting {
			return nil // still waiting: the next poll is due already
		}
		if s.mark(ctx, c, c.State, `state = 'waiting', partner_ref = ?, next_ms = ?`, rep.Answer.PartnerRef, ms(s.clock.Now().Add(s.cfg.PollEvery))) {
			s.emit(monitor.Event{Type: monitor.Received, Status: monitor.OK, Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Inbound,
				Channel: s.channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, PartnerRef: rep.Answer.PartnerRef, Duration: took,
				Attrs: map[string]string{"stage": "accepted"}})
			s.signal()
		}
	default:
		s.settle(ctx, c, r, q, *rep.Answer, took)
	}
	return nil
}

// channelOf is the channel of a partner's calls in events: social
// security's is dbtable when it is reached through the front-end tables.
func (s *Service) channelOf(partner string) string {
	if partner == "hrss" && s.cfg.HRSSVia == HRSSViaFrontEnd {
		return "dbtable"
	}
	if partner == "hrss" || partner == "hpf" {
		return "soap"
	}
	return "http"
}

// scoped keeps the members a scope asks about (a province's residents).
func scoped(ms []household.Member, scope string) []household.Member {
	if scope == "" {
		return ms
	}
	var out []household.Member
	for _, m := range ms {
		if household.Province(m.IDNumber) == scope {
			out = append(out, m)
		}
	}
	return out
}

// mark updates the call when it is still in state from; false means
// another path moved it (the deadline sweep) and this one stops.
func (s *Service) mark(ctx context.Context, c callRow, from, set string, args ...any) bool {
	db := s.deps.DB
	args = append(args, c.ID, from)
	var res sql.Result
	err := s.write(ctx, func() error {
		var err error
		res, err = db.ExecContext(ctx, db.Rebind(`UPDATE verif_calls SET `+set+` WHERE id = ? AND state = ?`), args...)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("verification outbox write failed", "call", c.Key, "err", err)
		}
		return false
	}
	n, _ := res.RowsAffected()
	return n == 1
}

// settle checks an answer and stores its outcome.
func (s *Service) settle(ctx context.Context, c callRow, r Request, q household.Query, ans household.Answer, took time.Duration) {
	facts, findings, reject := s.check(c, q, ans)
	if reject != "" {
		s.finish(ctx, c, r, c.State, StateRejected, nil, findings, reject, took)
		return
	}
	body, err := json.Marshal(storedAnswer{PartnerRef: ans.PartnerRef, AsOf: ans.AsOf, Facts: facts})
	if err != nil {
		s.log.Error("verification answer", "err", err)
		return
	}
	to := StateAnswered
	if s.sample() {
		to = StateReview
	}
	s.finish(ctx, c, r, c.State, to, body, findings, "", took, ans.PartnerRef)
}

// storedAnswer is what is kept of an accepted answer.
type storedAnswer struct {
	PartnerRef string           `json:"partner_ref"`
	AsOf       time.Time        `json:"as_of"`
	Facts      []household.Fact `json:"facts"`
}

// finish moves the call from one state to a final (or review) state,
// emits its event and finalises the request when it was the last open call.
func (s *Service) finish(ctx context.Context, c callRow, r Request, from, to string, answer []byte, findings []string, reason string, took time.Duration, ref ...string) {
	var sealed []byte
	if answer != nil {
		var err error
		if sealed, err = s.seal(answer); err != nil {
			s.log.Error("verification: seal answer", "err", err)
			return
		}
	}
	partnerRef := c.PartnerRef
	if len(ref) > 0 && ref[0] != "" {
		partnerRef = ref[0]
	}
	now := s.clock.Now()
	sampled := 0
	if to == StateReview {
		sampled = 1
	}
	if !s.mark(ctx, c, from, `state = ?, answer = ?, quality = ?, reason = ?, answered_ms = ?, partner_ref = ?, sampled = ?`,
		to, sealed, join(findings), reason, ms(now), partnerRef, sampled) {
		s.log.Info("verification answer after the call was closed (ignored)", "call", c.Key, "partner", c.Partner)
		return
	}
	s.outcome(c, r, to, findings, reason, took)
	if err := s.finalize(ctx, c.RequestID); err != nil {
		s.log.Error("verification finalise", "request", c.RequestID, "err", err)
	}
	s.signal()
}

func join(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// outcome records metrics, quality and the call's event.
func (s *Service) outcome(c callRow, r Request, to string, findings []string, reason string, took time.Duration) {
	s.metrics.outcomes.WithLabelValues(c.Partner, to).Inc()
	ev := monitor.Event{Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Inbound, Channel: s.channelOf(c.Partner),
		ExchangeID: c.Key, BusinessKey: c.RequestID, PartnerRef: c.PartnerRef, Duration: took, Attempt: c.Attempts + 1}
	if len(findings) > 0 {
		ev.Attrs = map[string]string{"quality": join(findings)}
	}
	switch to {
	case StateAnswered, StateReview:
		ev.Type, ev.Status = monitor.Received, monitor.OK
		if len(findings) > 0 {
			ev.Status = monitor.Warning
		}
		if to == StateReview {
			ev.Stage = "review"
		}
	case StateRejected:
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode, ev.ErrorMessage = monitor.Rejected, monitor.Error, "quality", first(findings), reason
	case StateFailed:
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorMessage = monitor.Failed, monitor.Error, "permanent", reason
	case StateLate:
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode, ev.ErrorMessage = monitor.ExpectationMissed, monitor.Warning, "timeliness", "late", "no answer before the deadline"
	}
	s.emit(ev)
	if alert, ratio := s.quality.record(c.Partner, to == StateRejected || to == StateLate, s.cfg.AlertRatio); alert {
		s.emit(monitor.Event{Type: monitor.Failed, Status: monitor.Error, Partner: c.Partner, Flow: callFlow(c.Partner, ""), Direction: monitor.Internal,
			ErrorClass: "quality", ErrorCode: "quality_threshold",
			ErrorMessage: fmt.Sprintf("%.0f%% of the last %d answers rejected or late (threshold %.0f%%)", ratio*100, s.cfg.AlertWindow, s.cfg.AlertRatio*100)})
		s.log.Warn("verification partner quality below threshold", "partner", c.Partner, "bad_ratio", ratio)
	}
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}

// finalize marks the request final when none of its calls is open.
func (s *Service) finalize(ctx context.Context, requestID string) error {
	db := s.deps.DB
	var open int
	if err := db.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM verif_calls WHERE request_id = ? AND state IN ('queued', 'sending', 'waiting', 'review')`),
		requestID).Scan(&open); err != nil {
		return err
	}
	if open > 0 {
		return nil
	}
	now := s.clock.Now()
	var res sql.Result
	err := s.write(ctx, func() error {
		var err error
		res, err = db.ExecContext(ctx, db.Rebind(`UPDATE verif_requests SET status = 'final', final_ms = ? WHERE id = ? AND status = 'open'`), ms(now), requestID)
		return err
	})
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		var created int64
		_ = db.QueryRowContext(ctx, db.Rebind(`SELECT created_ms FROM verif_requests WHERE id = ?`), requestID).Scan(&created)
		s.metrics.household.Observe(now.Sub(fromMS(created)).Seconds())
		s.pokeReturn()
	}
	return nil
}

// finalizeStranded finalises open requests none of whose calls is open.
func (s *Service) finalizeStranded(ctx context.Context) error {
	db := s.deps.DB
	rows, err := db.QueryContext(ctx, `SELECT r.id FROM verif_requests r WHERE r.status = 'open' AND NOT EXISTS
		(SELECT 1 FROM verif_calls c WHERE c.request_id = r.id AND c.state IN ('queued', 'sending', 'waiting', 'review'))`)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := s.finalize(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// sweepLoop closes calls whose deadline passed.
func (s *Service) sweepLoop(ctx context.Context) {
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("verification deadline sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(s.cfg.Tick):
		}
	}
}

// Sweep marks late every open call past its deadline and finalises their
// requests (partial results then show those partners as late).
func (s *Service) Sweep(ctx context.Context) error {
	db := s.deps.DB
	for {
		rows, err := db.QueryContext(ctx, db.Rebind(`SELECT `+callCols+` FROM verif_calls WHERE state IN `+openStates+` AND deadline_ms <= ? LIMIT 500`), ms(s.clock.Now()))
		if err != nil {
			return err
		}
		var calls []callRow
		for rows.Next() {
			c, err := scanCall(rows)
			if err != nil {
				rows.Close()
				return err
			}
			calls = append(calls, c)
		}
		rows.Close()
		if len(calls) == 0 {
			return nil
		}
		for _, c := range calls {
			r, _, err := s.loadRequest(ctx, c.RequestID)
			if err != nil {
				return err
			}
			s.finish(ctx, c, r, c.State, StateLate, nil, []string{"late"}, "no answer before the deadline", 0)
		}
	}
}
