package verification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Topics of the other provinces' requests (the routes of
// configs/routes/verification-ministry-*.yaml): the platform's queue is
// pulled onto TopicInbound; the service publishes each final answer on
// TopicReturn and reads the outcome of its return on TopicReturned.
const (
	TopicInbound  = "verification.inbound"
	TopicReturn   = "verification.return.ministry"
	TopicReturned = "verification.returned"
)

// HeaderRequest names the service's request an answer to return belongs to.
const HeaderRequest = "verification-request"

func (s *Service) pokeReturn() {
	select {
	case s.returnWake <- struct{}{}:
	default:
	}
}

// returnLoop publishes the answers due to other provinces, at once when a
// request becomes final and every InboundEvery for what is still due.
func (s *Service) returnLoop(ctx context.Context) {
	for {
		if err := s.ReturnAnswers(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("verification: publishing answers to other provinces failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.returnWake:
		case <-s.clock.After(s.cfg.InboundEvery):
		}
	}
}

// consume applies the messages of one subscription with apply; an error
// nacks the message (redelivered after RetryWait).
func (s *Service) consume(ctx context.Context, sub bus.Subscription, what string, apply func(context.Context, bus.Message) error) {
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return
			}
			s.log.Error("verification: receive", "topic", what, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-s.clock.After(time.Second):
			}
			continue
		}
		settle := context.WithoutCancel(ctx)
		if err := apply(ctx, d.Message()); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("verification: message not applied; retried", "topic", what, "err", err)
			_ = d.Nack(settle, s.cfg.RetryWait, err)
			continue
		}
		if err := d.Ack(settle); err != nil {
			s.log.Error("verification: ack", "topic", what, "err", err)
		}
	}
}

// applyInbound stores one request of another province (pulled by the route
// verification-ministry-inbound, which acknowledged it to the platform
// once it was on the bus). A redelivery finds the stored request by its
// reference. A request the hub cannot take is answered empty, not dropped.
func (s *Service) applyInbound(ctx context.Context, msg bus.Message) error {
	var in ministry.Inbound
	if err := json.Unmarshal(msg.Body, &in); err != nil || in.Ref == "" {
		ref := msg.Headers[ministry.HeaderRef]
		s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Error, Partner: "ministry", Flow: FlowMinistryAnswer,
			Direction: monitor.Inbound, PartnerRef: ref, ErrorClass: "validation", ErrorMessage: "unreadable inbound request",
			Attrs: map[string]string{"province": msg.Headers[ministry.HeaderProvince]}})
		if ref == "" {
			s.log.Error("verification: an inbound request without a reference dropped", "key", mask.Text(msg.Key))
			return nil
		}
		return s.publishReturn(ctx, "", ministry.ReturnBody{Ref: ref})
	}
	if in.FromProvince == "" {
		s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Error, Partner: "ministry", Flow: FlowMinistryAnswer,
			Direction: monitor.Inbound, PartnerRef: in.Ref, ErrorClass: "validation", ErrorMessage: "inbound request without the asking province"})
		return s.publishReturn(ctx, "", ministry.ReturnBody{Ref: in.Ref})
	}
	at, _ := time.Parse(time.RFC3339, in.ReceivedAt) // checked by the connector's parser
	r := Request{Reference: in.Ref, Household: in.Ref, Authorization: in.AuthNo, Origin: in.FromProvince, ReceivedAt: at}
	for _, p := range in.Persons {
		r.Members = append(r.Members, household.Member{Name: p.Name, IDNumber: p.ID})
	}
	_, _, err := s.Submit(ctx, r)
	var ie *InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Error, Partner: "ministry", Flow: FlowMinistryAnswer,
			Direction: monitor.Inbound, PartnerRef: r.Reference, ErrorClass: "validation", ErrorMessage: mask.Text(err.Error()),
			Attrs: map[string]string{"province": r.Origin}})
		// A request the hub cannot take is answered empty, not pulled forever.
		return s.publishReturn(ctx, "", ministry.ReturnBody{Ref: r.Reference})
	default:
		return err
	}
}

// publishReturn puts an answer on TopicReturn. The key is the request's
// (or, for a request never stored, the reference's) plus this run's
// attempt, so that a return that failed is published anew.
func (s *Service) publishReturn(ctx context.Context, id string, b ministry.ReturnBody) error {
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	corr := id
	if corr == "" {
		corr = "ref:" + b.Ref
	}
	s.returnMu.Lock()
	stamp, ok := s.returning[corr]
	if !ok {
		stamp = s.clock.Now().UnixMilli()
		s.returning[corr] = stamp
	}
	s.returnMu.Unlock()
	key := fmt.Sprintf("return:%s:%d", corr, stamp)
	return s.pub.Publish(ctx, TopicReturn, bus.Message{Key: corr, IdempotencyKey: key, Body: body,
		Headers: map[string]string{"Content-Type": "application/json", HeaderRequest: id, ministry.HeaderRef: b.Ref}})
}

// ReturnAnswers publishes the final results of other provinces' requests
// not yet returned, once per run (again when a return failed).
func (s *Service) ReturnAnswers(ctx context.Context) error {
	db := s.deps.DB
	rows, err := db.QueryContext(ctx, db.Rebind(`SELECT id FROM verif_requests WHERE status = 'final' AND origin <> '' AND returned_ms = 0`))
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
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		s.returnMu.Lock()
		_, published := s.returning[id]
		s.returnMu.Unlock()
		if published {
			continue
		}
		if err := s.returnOne(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) returnOne(ctx context.Context, id string) error {
	_, row, err := s.loadRequest(ctx, id)
	if err != nil {
		return err
	}
	calls, err := s.calls(ctx, id)
	if err != nil {
		return err
	}
	var facts []household.Fact
	complete := true
	for _, c := range calls {
		if c.State != StateAnswered {
			complete = false
			continue
		}
		a, err := s.answerOf(c)
		if err != nil {
			return err
		}
		facts = append(facts, a.Facts...)
	}
	return s.publishReturn(ctx, id, ministry.ReturnBody{Ref: row.Reference, Facts: facts, Complete: complete})
}

// applyReturned records the outcome of a return the route
// verification-ministry-return settled: the return time, or, for a
// failure, a new attempt at the next round.
func (s *Service) applyReturned(ctx context.Context, msg bus.Message) (err error) {
	id, ref := msg.Headers[HeaderRequest], msg.Headers[ministry.HeaderRef]
	corr := id
	if corr == "" {
		corr = "ref:" + ref
	}
	if msg.Headers[routes.HeaderReplyStatus] == routes.ReplyFailed {
		s.returnMu.Lock()
		delete(s.returning, corr)
		s.returnMu.Unlock()
		s.emit(monitor.Event{Type: monitor.Failed, Status: monitor.Error, Partner: "ministry", Flow: FlowMinistryAnswer, Direction: monitor.Outbound,
			Channel: "http", ExchangeID: id, BusinessKey: id, PartnerRef: ref, ErrorClass: msg.Headers[routes.HeaderReplyClass],
			ErrorMessage: msg.Headers[routes.HeaderReplyError]})
		return nil
	}
	// Settled: once recorded (below, for a request) this run forgets the return.
	defer func() {
		if err == nil {
			s.returnMu.Lock()
			delete(s.returning, corr)
			s.returnMu.Unlock()
		}
	}()
	if id == "" {
		return nil // an empty answer to a request never stored
	}
	_, row, err := s.loadRequest(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	now := s.clock.Now()
	var n int64
	if err := s.write(ctx, func() error {
		res, err := s.deps.DB.ExecContext(ctx, s.deps.DB.Rebind(`UPDATE verif_requests SET returned_ms = ? WHERE id = ? AND returned_ms = 0`), ms(now), id)
		if err == nil {
			n, _ = res.RowsAffected()
		}
		return err
	}); err != nil {
		return err
	}
	if n == 0 {
		return nil // a redelivery: recorded already
	}
	s.emit(monitor.Event{Type: monitor.Sent, Status: monitor.OK, Partner: "ministry", Flow: FlowMinistryAnswer, Direction: monitor.Outbound,
		Channel: "http", ExchangeID: id, BusinessKey: id, PartnerRef: row.Reference,
		Attrs: map[string]string{"province": row.Origin, "via": msg.Headers[routes.HeaderReplyVia]}})
	s.signal()
	return nil
}

// ProvinceStat is one province's cross-province exchanges in one direction.
type ProvinceStat struct {
	// Province is the two-digit code.
	Province string
	// Direction is "out" (Shanghai asked the province) or "in" (the province asked Shanghai).
	Direction string
	// Received counts requests (in: received from the platform; out: sent).
	Received int
	// Returned counts answered ones (in: returned to the platform; out: answered by the province).
	Returned int
	// Open counts those without an answer yet.
	Open int
	// Late counts outbound queries not answered before the deadline.
	Late int
	// AvgTurnaround and MaxTurnaround are from receipt (or sending) to return (or answer).
	AvgTurnaround, MaxTurnaround time.Duration
}

// ProvinceStats counts cross-province exchanges per province and
// direction for requests created in [from, to), with turnaround times
// from receipt to return.
func (s *Service) ProvinceStats(ctx context.Context, from, to time.Time) ([]ProvinceStat, error) {
	d := s.deps.DB
	byKey := map[string]*ProvinceStat{}
	get := func(p, dir string) *ProvinceStat {
		k := dir + p
		if byKey[k] == nil {
			byKey[k] = &ProvinceStat{Province: p, Direction: dir}
		}
		return byKey[k]
	}
	type agg struct {
		sum, max int64
		n        int
	}
	turn := map[*ProvinceStat]*agg{}
	add := func(st *ProvinceStat, dt int64) {
		a := turn[st]
		if a == nil {
			a = &agg{}
			turn[st] = a
		}
		a.sum += dt
		a.max = max(a.max, dt)
		a.n++
	}
	rows, err := d.QueryContext(ctx, d.Rebind(`SELECT origin, received_ms, returned_ms FROM verif_requests WHERE origin <> '' AND created_ms >= ? AND created_ms < ?`), ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("verification: province stats: %w", err)
	}
	for rows.Next() {
		var p string
		var rec, ret int64
		if err := rows.Scan(&p, &rec, &ret); err != nil {
			rows.Close()
			return nil, err
		}
		st := get(p, "in")
		st.Received++
		if ret > 0 {
			st.Returned++
			add(st, ret-rec)
		} else {
			st.Open++
		}
	}
	rows.Close()
	rows, err = d.QueryContext(ctx, d.Rebind(`SELECT scope, state, sent_ms, answered_ms FROM verif_calls WHERE partner = 'ministry' AND created_ms >= ? AND created_ms < ?`), ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("verification: province stats: %w", err)
	}
	for rows.Next() {
		var p, state string
		var sent, ans int64
		if err := rows.Scan(&p, &state, &sent, &ans); err != nil {
			rows.Close()
			return nil, err
		}
		st := get(p, "out")
		st.Received++
		switch state {
		case StateAnswered, StateReview, StateRejected:
			st.Returned++
			if sent > 0 {
				add(st, ans-sent)
			}
		case StateLate:
			st.Late++
		case StateFailed:
		default:
			st.Open++
		}
	}
	rows.Close()
	var out []ProvinceStat
	for _, st := range byKey {
		if a := turn[st]; a != nil && a.n > 0 {
			st.AvgTurnaround = time.Duration(a.sum/int64(a.n)) * time.Millisecond
			st.MaxTurnaround = time.Duration(a.max) * time.Millisecond
		}
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Direction != out[j].Direction {
			return out[i].Direction > out[j].Direction
		}
		return out[i].Province < out[j].Province
	})
	return out, nil
}
