package verification

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
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

// Run works the outbox until ctx is done: a dispatcher per partner, the
// deadline sweep, the inbound requests of other provinces and the quality
// reports. Calls left in doubt by an earlier run are looked up first.
func (s *Service) Run(ctx context.Context) error {
	db := s.deps.DB
	// This process owns the outbox now (one replica runs it, under a
	// lease): what an earlier run left in flight is in doubt and due.
	if _, err := db.ExecContext(ctx, db.Rebind(`UPDATE verif_calls SET next_ms = ? WHERE state = 'sending'`), ms(s.clock.Now())); err != nil {
		return fmt.Errorf("verification: resume: %w", err)
	}
	// A crash between a call's last answer and its request's finalisation
	// leaves a request open with nothing open under it.
	if err := s.finalizeStranded(ctx); err != nil {
		return fmt.Errorf("verification: resume: %w", err)
	}
	var wg sync.WaitGroup
	for _, id := range s.order {
		wg.Go(func() { s.dispatch(ctx, id) })
	}
	wg.Go(func() { s.sweepLoop(ctx) })
	if s.inbound != nil {
		wg.Go(func() { s.inboundLoop(ctx) })
	}
	if s.cfg.ReportEvery > 0 {
		wg.Go(func() { s.reportLoop(ctx) })
	}
	wg.Wait()
	return nil
}

// dispatch works one partner's due calls with bounded concurrency.
func (s *Service) dispatch(ctx context.Context, partner string) {
	sem := make(chan struct{}, s.cfg.Concurrency)
	var mu sync.Mutex
	inflight := map[int64]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		rows, err := s.due(ctx, partner, 4*s.cfg.Concurrency)
		if err != nil && ctx.Err() == nil {
			s.log.Error("verification outbox read failed", "partner", partner, "err", err)
		}
		started := 0
		for _, c := range rows {
			mu.Lock()
			busy := inflight[c.ID]
			if !busy {
				inflight[c.ID] = true
			}
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			started++
			wg.Go(func() {
				defer func() {
					<-sem
					mu.Lock()
					delete(inflight, c.ID)
					mu.Unlock()
					s.poke(partner)
				}()
				s.process(ctx, c)
			})
		}
		if started > 0 {
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

// holdFor is how long a call being asked stays out of the due list: past
// it (a crash), it is due again and looked up by key.
func (s *Service) holdFor() time.Duration { return 2*time.Minute + s.cfg.RetryWait }

// process moves one call forward.
func (s *Service) process(ctx context.Context, c callRow) {
	p := s.partners[c.Partner]
	r, _, err := s.loadRequest(ctx, c.RequestID)
	if err != nil {
		s.log.Error("verification call without its request", "call", c.Key, "err", err)
		return
	}
	q := household.Query{Key: c.Key, RequestID: c.RequestID, Scope: c.Scope, Authorization: r.Authorization, Members: scoped(r.Members, c.Scope), PartnerRef: c.PartnerRef}
	now := s.clock.Now()
	start := time.Now()
	var ans household.Answer
	var found bool
	switch c.State {
	case StateWaiting, StateSending:
		// Asked before: ask the partner what it holds under the key; only
		// a partner that never saw the call is asked again.
		if !s.mark(ctx, c, c.State, `lookups = lookups + 1`) {
			return
		}
		ans, found, err = p.Lookup(ctx, q)
		s.metrics.calls.WithLabelValues(c.Partner, "lookup").Inc()
		if err != nil {
			s.retry(ctx, c, c.State, err, time.Since(start))
			return
		}
		if !found && c.State == StateWaiting {
			err = fmt.Errorf("%s lost the accepted query %s", c.Partner, c.PartnerRef)
			s.retry(ctx, c, StateSending, err, time.Since(start))
			return
		}
		if found {
			break
		}
		fallthrough
	case StateQueued:
		if c.State == StateQueued && !s.mark(ctx, c, StateQueued, `state = 'sending', attempts = attempts + 1, asks = asks + 1, sent_ms = ?, next_ms = ?`, ms(now), ms(now.Add(s.holdFor()))) {
			return
		}
		if c.State == StateSending && !s.mark(ctx, c, StateSending, `attempts = attempts + 1, asks = asks + 1, sent_ms = ?, next_ms = ?`, ms(now), ms(now.Add(s.holdFor()))) {
			return
		}
		c.State = StateSending
		s.emit(monitor.Event{Type: monitor.Sent, Status: monitor.OK, Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Outbound,
			Channel: channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, Attempt: c.Attempts + 1, Records: int64(len(q.Members))})
		ans, err = p.Ask(ctx, q)
		s.metrics.calls.WithLabelValues(c.Partner, "ask").Inc()
		if err != nil {
			s.fail(ctx, c, r, err, time.Since(start))
			return
		}
	}
	if ans.Pending {
		if s.mark(ctx, c, c.State, `state = 'waiting', partner_ref = ?, next_ms = ?`, ans.PartnerRef, ms(s.clock.Now().Add(s.cfg.PollEvery))) {
			if c.State != StateWaiting {
				s.emit(monitor.Event{Type: monitor.Received, Status: monitor.OK, Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Inbound,
					Channel: channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, PartnerRef: ans.PartnerRef, Duration: time.Since(start),
					Attrs: map[string]string{"stage": "accepted"}})
			}
			s.signal()
		}
		return
	}
	s.settle(ctx, c, r, q, ans, time.Since(start))
}

func channelOf(partner string) string {
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

// fail handles an error of Ask: a bad answer is rejected, a permanent
// error fails the call, anything else leaves it in doubt and retried by
// lookup after a backoff (a circuit that refused the call: asked anew).
func (s *Service) fail(ctx context.Context, c callRow, r Request, err error, took time.Duration) {
	switch {
	case errors.Is(err, household.ErrBadAnswer):
		s.finish(ctx, c, r, StateSending, StateRejected, nil, []string{"format"}, mask.Text(err.Error()), took)
	case errors.Is(err, connectors.ErrPermanent):
		s.finish(ctx, c, r, StateSending, StateFailed, nil, nil, mask.Text(err.Error()), took)
	case errors.Is(err, httpx.ErrCircuitOpen):
		s.retry(ctx, c, StateQueued, err, took)
	default:
		s.retry(ctx, c, StateSending, err, took)
	}
}

// retry schedules the call again in state to, after a backoff.
func (s *Service) retry(ctx context.Context, c callRow, to string, err error, took time.Duration) {
	wait := s.cfg.RetryWait
	for i := 1; i < c.Attempts+c.Lookups && wait < time.Minute; i++ {
		wait *= 2
	}
	wait = min(wait, time.Minute)
	if !s.mark(ctx, c, StateSending, `state = ?, next_ms = ?, reason = ?`, to, ms(s.clock.Now().Add(wait)), mask.Text(err.Error())) &&
		!s.mark(ctx, c, StateWaiting, `state = ?, next_ms = ?, reason = ?`, to, ms(s.clock.Now().Add(wait)), mask.Text(err.Error())) {
		return
	}
	s.metrics.outcomes.WithLabelValues(c.Partner, "retry").Inc()
	s.emit(monitor.Event{Type: monitor.Retried, Status: monitor.Warning, Partner: c.Partner, Flow: callFlow(c.Partner, ""), Direction: monitor.Outbound,
		Channel: channelOf(c.Partner), ExchangeID: c.Key, BusinessKey: c.RequestID, Attempt: c.Attempts + 1, Duration: took,
		ErrorClass: "transient", ErrorMessage: mask.Text(err.Error())})
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
	ev := monitor.Event{Partner: c.Partner, Flow: callFlow(c.Partner, r.Origin), Direction: monitor.Inbound, Channel: channelOf(c.Partner),
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
		if s.inbound != nil {
			s.pokeReturn()
		}
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
