package joblib

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
)

// Answer is the body a joblib sink answers with on a route's reply_to
// topic: the portal's outcome of every record of the batch, so the
// requester (the portal service's outbox) keeps each record's state — a
// record delivered, refused with the portal's reason, or out of order (to
// be sent again after its application's earlier node).
type Answer struct {
	// Op is the batch's op.
	Op string `json:"op"`
	// Results are the outcomes of the records, in the batch's order, by
	// record key (Node.Key, a case id, a payout id); none for a push.
	Results []Result `json:"results,omitempty"`
	// Push is the portal's acknowledgement of a push batch (op push).
	Push *PushAck `json:"push,omitempty"`
	// Checked is true when the answer was not the call's own but the
	// portal's query after a delivery in doubt: every record the portal
	// holds is answered duplicate.
	Checked bool `json:"checked,omitempty"`
}

// DecodeAnswer decodes an answer a joblib sink published.
func DecodeAnswer(body []byte) (Answer, error) {
	var a Answer
	if err := strictUnmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%w: answer: %v", ErrMalformed, err)
	}
	switch a.Op {
	case OpNodes, OpConfirm, OpPayout:
		if len(a.Results) == 0 {
			return a, fmt.Errorf("%w: answer: op %s without results", ErrMalformed, a.Op)
		}
		for _, r := range a.Results {
			if !outcomes[r.Outcome] {
				return a, fmt.Errorf("%w: answer: result for %s: unknown outcome %q", ErrMalformed, clip(r.ID), clip(r.Outcome))
			}
		}
	case OpPush:
		if a.Push == nil {
			return a, fmt.Errorf("%w: answer: op push without its acknowledgement", ErrMalformed)
		}
	default:
		return a, fmt.Errorf("%w: answer: op %q", ErrMalformed, clip(a.Op))
	}
	return a, nil
}

// keys are the batch's record keys, in order.
func (b Batch) keys() []string {
	var ks []string
	switch b.Op {
	case OpNodes:
		for _, n := range b.Nodes {
			ks = append(ks, n.Key())
		}
	case OpConfirm:
		for _, c := range b.Confirmations {
			ks = append(ks, c.CaseID)
		}
	case OpPayout:
		for _, p := range b.Payouts {
			ks = append(ks, p.PayoutID)
		}
	}
	return ks
}

func (s *Sink) batch(msg bus.Message) (Batch, error) {
	b, err := DecodeBatch(msg.Body)
	if err != nil {
		return b, connectors.Permanent(err)
	}
	if b.Op != s.cfg.Op {
		return b, connectors.Permanent(fmt.Errorf("joblib: a %s batch on a %s sink", b.Op, s.cfg.Op))
	}
	return b, nil
}

func answerMessage(a Answer) (bus.Message, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return bus.Message{}, connectors.Permanent(err)
	}
	return bus.Message{Headers: map[string]string{"Content-Type": "application/json"}, Body: body}, nil
}

// Reply delivers one batch and answers with every record's outcome
// (routes.Replier): refused and out-of-order records are answered, not
// errors, so the requester decides (refused records go to the operators,
// records out of order are sent again after the earlier node). A batch
// that breaks the rules or a call refused as a whole (4xx) is permanent; a
// call that never left (breaker open) is not sent; any other failure after
// the request left is in doubt, settled by Answer.
func (s *Sink) Reply(ctx context.Context, msg bus.Message) (bus.Message, error) {
	b, err := s.batch(msg)
	if err != nil {
		return bus.Message{}, err
	}
	c, err := s.client.get(ctx)
	if err != nil {
		return bus.Message{}, connectors.NotSent(err)
	}
	a := Answer{Op: b.Op}
	var res map[string]Result
	switch b.Op {
	case OpNodes:
		res, err = c.PushNodes(ctx, b.Nodes)
	case OpPush:
		var ack PushAck
		ack, err = c.PushPersons(ctx, *b.Push)
		a.Push = &ack
	case OpConfirm:
		res, err = c.Confirm(ctx, b.Confirmations)
	case OpPayout:
		res, err = c.Payouts(ctx, b.Payouts)
	}
	if err != nil {
		return bus.Message{}, classify(err)
	}
	for _, k := range uniq(b.keys()) {
		a.Results = append(a.Results, res[k])
	}
	return answerMessage(a)
}

// Answer settles a delivery in doubt through the portal's query
// (routes.AnswerChecker): found when the portal holds every record of the
// batch (each answered duplicate), not found when it misses one (the engine
// sends the batch, and the portal answers the records it holds as
// duplicates).
func (s *Sink) Answer(ctx context.Context, msg bus.Message) (bus.Message, bool, error) {
	b, err := s.batch(msg)
	if err != nil {
		return bus.Message{}, false, err
	}
	c, err := s.client.get(ctx)
	if err != nil {
		return bus.Message{}, false, err
	}
	a := Answer{Op: b.Op, Checked: true}
	if b.Op == OpPush {
		ack, err := c.PushStatus(ctx, b.Push.BatchID, len(b.Push.Persons))
		if errors.Is(err, ErrNotFound) {
			return bus.Message{}, false, nil
		}
		if err != nil {
			return bus.Message{}, false, err
		}
		a.Push = &ack
	} else {
		held, err := s.held(ctx, c, b)
		if err != nil || !held {
			return bus.Message{}, false, err
		}
		for _, k := range uniq(b.keys()) {
			a.Results = append(a.Results, Result{ID: k, Outcome: OutcomeDuplicate})
		}
	}
	m, err := answerMessage(a)
	return m, err == nil, err
}
