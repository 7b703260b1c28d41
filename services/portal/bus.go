package portal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Bus topics of the portal exchanges. The routes of
// configs/routes/portal*.yaml pull the portal's applications and cases
// onto portal.applications and portal.cases, deliver the batches the
// service publishes on portal.out.<op> and answer each on portal.answers.
const (
	TopicApplications = "portal.applications"
	TopicCases        = "portal.cases"
	TopicAnswers      = "portal.answers"
	TopicOutNodes     = "portal.out." + joblib.OpNodes
	TopicOutPush      = "portal.out." + joblib.OpPush
	TopicOutConfirm   = "portal.out." + joblib.OpConfirm
	TopicOutPayout    = "portal.out." + joblib.OpPayout
)

// OutTopic is the topic the batches of op (joblib.OpNodes, …) are published on.
func OutTopic(op string) string { return "portal.out." + op }

// markBatchSeq numbers the outbox's batch keys.
const markBatchSeq = "outbox.batch"

// consumers are what Run subscribes: the feeds and the answers.
func (s *Service) consumers() []struct {
	topic string
	apply func(context.Context, bus.Message) error
} {
	return []struct {
		topic string
		apply func(context.Context, bus.Message) error
	}{{TopicApplications, s.applyApplication}, {TopicCases, s.applyCase}, {TopicAnswers, s.applyAnswer}}
}

// Run consumes the feeds and the answers, and does a round every cfg.Every
// (or at once when kicked) until ctx ends. Batches an earlier run left
// published are published again under their keys: a route delivers a key
// once.
func (s *Service) Run(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET next_at = ? WHERE state = 'sending'`), s.now().UnixMilli()); err != nil {
		return fmt.Errorf("portal: resume: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, c := range s.consumers() {
		sub, err := s.d.Bus.Subscribe(ctx, bus.SubscribeOptions{Topic: c.topic, Subscription: "portal." + c.topic, ProcessingDeadline: time.Minute, Prefetch: 64})
		if err != nil {
			return fmt.Errorf("portal: subscribe %s: %w", c.topic, err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = sub.Close(cctx)
		}()
		wg.Go(func() { s.consume(ctx, sub, c.topic, c.apply) })
	}
	// What an applied message queued (a 预审 node, a confirmation, the
	// next node after an answer) is published at once, without a round.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.pokes:
			}
			s.roundMu.Lock()
			err := s.Drain(ctx)
			s.roundMu.Unlock()
			if err != nil && ctx.Err() == nil {
				s.log.Warn("portal outbox", "err", err)
			}
		}
	})
	for {
		if err := s.Round(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("portal round", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-s.d.Clock.After(s.cfg.Every):
		}
	}
}

// poke asks Run to publish what is due (without a whole round).
func (s *Service) poke() {
	select {
	case s.pokes <- struct{}{}:
	default:
	}
}

// consume applies the messages of one subscription; one that cannot be
// applied (the store) is retried.
func (s *Service) consume(ctx context.Context, sub bus.Subscription, topic string, apply func(context.Context, bus.Message) error) {
	for {
		d, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
				return
			}
			s.log.Error("portal: receive", "topic", topic, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		settle := context.WithoutCancel(ctx)
		if err := apply(ctx, d.Message()); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("portal: message not applied; retried", "topic", topic, "err", err)
			_ = d.Nack(settle, s.cfg.RetryWait, err)
			continue
		}
		if err := d.Ack(settle); err != nil {
			s.log.Error("portal: ack", "topic", topic, "err", err)
		}
		s.consumed.WithLabelValues(topic).Inc()
	}
}

// refusedRecord is the body of a record the route's parser refused.
type refusedRecord struct {
	ID    string `json:"id"`
	Index int64  `json:"index"`
}

// takeRefused records a record the portal sent that the route's parser
// refused (once, however often it is delivered); it is never applied.
func (s *Service) takeRefused(ctx context.Context, source string, msg bus.Message, reason, partner, flow string) error {
	var r refusedRecord
	_ = json.Unmarshal(msg.Body, &r)
	if r.ID == "" {
		r.ID = msg.Key
	}
	if reason == "" {
		reason = "refused by the route (no reason given)"
	}
	var n int
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_refused WHERE source = ? AND ref = ? AND reason = ?`),
			source, r.ID, reason).Scan(&n); err != nil || n > 0 {
			return err
		}
		return s.refuse(ctx, tx, source, r.ID, r.Index, reason)
	})
	if err != nil || n > 0 {
		return err
	}
	s.emit(monitor.Event{Partner: partner, Flow: flow, Direction: monitor.Inbound, Type: monitor.Rejected,
		Status: monitor.Warning, ExchangeID: source + ":" + r.ID, ErrorClass: "format", ErrorMessage: mask.Text(reason)})
	s.sent.WithLabelValues(source[:len(source)-1], "refused").Inc()
	return nil
}

// applyApplication takes one application the route pulled from the job
// library, with its 预审 node, once by its id.
func (s *Service) applyApplication(ctx context.Context, msg bus.Message) error {
	if msg.Headers[joblib.HeaderRecord] == "refused" {
		return s.takeRefused(ctx, "applications", msg, msg.Headers[joblib.HeaderReason], PartnerJobLib, FlowFetch)
	}
	var a joblib.Application
	err := json.Unmarshal(msg.Body, &a)
	if err == nil {
		err = a.Validate()
	}
	if err != nil {
		return s.takeRefused(ctx, "applications", msg, "not an application: "+mask.Text(err.Error()), PartnerJobLib, FlowFetch)
	}
	var taken, held bool
	if err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		taken, held, err = s.takeApplication(ctx, tx, &a)
		return err
	}); err != nil {
		return fmt.Errorf("portal: take application: %w", err)
	}
	if held {
		// The application is taken; a failure here must not nack it (a
		// redelivery finds it taken and would not come back here): the
		// next round registers it again (expectRegisters).
		if err := s.expectRegister(ctx, a.ItemCode); err != nil {
			s.log.Error("portal: expect the register for a waiting application", "item", a.ItemCode, "application", a.ApplicationID, "err", err)
		}
	}
	if taken {
		s.sent.WithLabelValues("application", "taken").Inc()
		s.poke()
	} else {
		s.sent.WithLabelValues("application", "duplicate").Inc()
	}
	return nil
}

// applyCase takes one case the route pulled from 免申即享 and decides it in
// the same transaction (the decision is queued for the confirmation
// interface), once by its id.
func (s *Service) applyCase(ctx context.Context, msg bus.Message) error {
	if msg.Headers[joblib.HeaderRecord] == "refused" {
		return s.takeRefused(ctx, "cases", msg, msg.Headers[joblib.HeaderReason], PartnerMianshen, FlowCases)
	}
	var c joblib.Case
	err := json.Unmarshal(msg.Body, &c)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		return s.takeRefused(ctx, "cases", msg, "not a case: "+mask.Text(err.Error()), PartnerMianshen, FlowCases)
	}
	var d string
	if err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = s.takeCase(ctx, tx, &c)
		return err
	}); err != nil {
		return fmt.Errorf("portal: take case: %w", err)
	}
	switch d {
	case "":
		s.sent.WithLabelValues("case", "duplicate").Inc()
	case joblib.DecisionConfirm, joblib.DecisionRefuse:
		s.sent.WithLabelValues("case", d).Inc()
		s.poke()
	default:
		s.sent.WithLabelValues("case", d).Inc()
	}
	return nil
}
