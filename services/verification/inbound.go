package verification

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Inbound is the queue of other provinces' requests on the ministry
// platform; the hub adapts connectors/ministry to it.
type Inbound interface {
	// Pull returns up to limit requests not yet acknowledged, each with
	// Origin (the asking province), Reference (the platform's reference)
	// and ReceivedAt set.
	Pull(ctx context.Context, limit int) ([]Request, error)
	// Ack tells the platform a request is durably stored.
	Ack(ctx context.Context, ref string) error
	// Return sends the answer of a request; complete is false when some
	// unit did not answer. Returning twice is harmless.
	Return(ctx context.Context, ref string, facts []household.Fact, complete bool) error
}

// SetInbound turns on answering other provinces' requests (before Run).
func (s *Service) SetInbound(in Inbound) {
	s.inbound = in
	s.returnWake = make(chan struct{}, 1)
}

func (s *Service) pokeReturn() {
	select {
	case s.returnWake <- struct{}{}:
	default:
	}
}

func (s *Service) inboundLoop(ctx context.Context) {
	for {
		if err := s.PullInbound(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("verification: pulling other provinces' requests failed", "err", err)
		}
		if err := s.ReturnAnswers(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("verification: returning answers to other provinces failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.returnWake:
		case <-s.clock.After(s.cfg.InboundEvery):
		}
	}
}

// PullInbound stores the requests waiting on the platform and
// acknowledges each once stored (a crash in between: pulled again, and
// the stored request is found by its reference).
func (s *Service) PullInbound(ctx context.Context) error {
	for {
		reqs, err := s.inbound.Pull(ctx, 50)
		if err != nil {
			return err
		}
		if len(reqs) == 0 {
			return nil
		}
		for _, r := range reqs {
			if r.Origin == "" || r.Reference == "" {
				return fmt.Errorf("verification: inbound request without origin or reference")
			}
			if _, _, err := s.Submit(ctx, r); err != nil {
				s.emit(monitor.Event{Type: monitor.Rejected, Status: monitor.Error, Partner: "ministry", Flow: FlowMinistryAnswer,
					Direction: monitor.Inbound, PartnerRef: r.Reference, ErrorClass: "validation", ErrorMessage: err.Error(),
					Attrs: map[string]string{"province": r.Origin}})
				// A request the hub cannot take is answered empty, not pulled forever.
				if rerr := s.inbound.Return(ctx, r.Reference, nil, false); rerr != nil {
					return rerr
				}
			}
			if err := s.inbound.Ack(ctx, r.Reference); err != nil {
				return err
			}
		}
	}
}

// ReturnAnswers returns the final results of other provinces' requests.
func (s *Service) ReturnAnswers(ctx context.Context) error {
	db := s.deps.DB
	for {
		rows, err := db.QueryContext(ctx, db.Rebind(`SELECT id FROM verif_requests WHERE status = 'final' AND origin <> '' AND returned_ms = 0 LIMIT 50`))
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
		if len(ids) == 0 {
			return nil
		}
		for _, id := range ids {
			if err := s.returnOne(ctx, id); err != nil {
				return err
			}
		}
	}
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
	start := time.Now()
	if err := s.inbound.Return(ctx, row.Reference, facts, complete); err != nil {
		return err
	}
	now := s.clock.Now()
	if err := s.write(ctx, func() error {
		_, err := s.deps.DB.ExecContext(ctx, s.deps.DB.Rebind(`UPDATE verif_requests SET returned_ms = ? WHERE id = ?`), ms(now), id)
		return err
	}); err != nil {
		return err
	}
	s.emit(monitor.Event{Type: monitor.Sent, Status: monitor.OK, Partner: "ministry", Flow: FlowMinistryAnswer, Direction: monitor.Outbound,
		Channel: "http", ExchangeID: id, BusinessKey: id, PartnerRef: row.Reference, Records: int64(len(facts)), Duration: time.Since(start),
		Attrs: map[string]string{"province": row.Origin, "complete": fmt.Sprint(complete)}})
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
