package routes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Replier is a sink whose partner answers each message: a query, a lookup,
// a verification. A route with reply_to delivers through Reply instead of
// Send and publishes the answer on the reply_to topic before it settles the
// delivery. Reply's contract is Send's: idempotent on msg.IdempotencyKey,
// errors marked Permanent, InDoubt or NotSent as they apply.
type Replier interface {
	Reply(ctx context.Context, msg bus.Message) (bus.Message, error)
}

// AnswerChecker is a Replier that can fetch the answer its partner keeps
// under a message's idempotency key (a lookup by key, which asks nothing
// anew). The engine calls it where a DeliveryChecker would be asked: a
// delivery in doubt (a timeout, a cut, a crash between the send and the
// publication of the answer). found false means the partner never received
// msg, and the engine sends it; an error keeps the delivery in doubt.
// Without an AnswerChecker a delivery in doubt is dead-lettered (in doubt)
// unless the sink declares itself idempotent or resend_in_doubt is set.
type AnswerChecker interface {
	Answer(ctx context.Context, msg bus.Message) (answer bus.Message, found bool, err error)
}

// Headers of an answer published on a route's reply_to topic. The answer
// also carries the request's own headers (the requester's correlation) and
// its Key.
const (
	// HeaderReplyOf is the idempotency key of the request answered.
	HeaderReplyOf = "mzhub-reply-of"
	// HeaderReplyRoute is the route that delivered the request.
	HeaderReplyRoute = "mzhub-reply-route"
	// HeaderReplyStatus is ReplyOK or ReplyFailed.
	HeaderReplyStatus = "mzhub-reply-status"
	// HeaderReplyVia tells how the answer was obtained: ReplyViaSend (the
	// request was delivered) or ReplyViaLookup (a delivery in doubt was
	// settled by the partner's answer under the key, nothing sent again).
	HeaderReplyVia = "mzhub-reply-via"
	// HeaderReplyError is a failure answer's error (masked), and
	// HeaderReplyClass its class: permanent, in_doubt, timeout or transient.
	HeaderReplyError = "mzhub-reply-error"
	HeaderReplyClass = "mzhub-reply-class"
)

// Values of the reply headers and the suffixes of the answers' idempotency
// keys (the request's key plus the suffix): a redelivery of a request
// publishes the same answer key, so the consumer applies one answer.
const (
	ReplyOK        = "ok"
	ReplyFailed    = "failed"
	ReplyViaSend   = "send"
	ReplyViaLookup = "lookup"
	ReplySuffix    = "/reply"
	FailedSuffix   = "/failed"
)

// replySinkName labels the answers in the route metrics (sink deliveries)
// and in the topology.
const replySinkName = "reply_to"

// answerChecker adapts an AnswerChecker to a DeliveryChecker, so that the
// engine's generic paths (replays, bus dead letters) treat the sink as one
// that can be asked.
type answerChecker struct{ a AnswerChecker }

func (c answerChecker) Delivered(ctx context.Context, msg bus.Message) (bool, error) {
	_, found, err := c.a.Answer(ctx, msg)
	return found, err
}

// publishReply publishes the answer to request on the route's reply_to
// topic; via is ReplyViaSend or ReplyViaLookup.
func (rn *runner) publishReply(ctx context.Context, request bus.Message, answer bus.Message, via string) error {
	out := bus.Message{Key: request.Key, IdempotencyKey: request.IdempotencyKey + ReplySuffix, Body: answer.Body, Headers: replyHeaders(request, answer.Headers)}
	out.Headers[HeaderReplyOf] = request.IdempotencyKey
	out.Headers[HeaderReplyRoute] = rn.r.ID
	out.Headers[HeaderReplyStatus] = ReplyOK
	out.Headers[HeaderReplyVia] = via
	if err := rn.e.deps.Bus.Publish(ctx, rn.r.ReplyTo, out); err != nil {
		rn.e.metrics.deliveries.WithLabelValues(rn.r.ID, replySinkName, "failed").Inc()
		return fmt.Errorf("publish the answer on %s: %w", rn.r.ReplyTo, err)
	}
	rn.e.metrics.deliveries.WithLabelValues(rn.r.ID, replySinkName, "sent").Inc()
	return nil
}

// publishFailure tells the requester that msg was dead-lettered: a failure
// answer with the error's class and (masked) text.
func (rn *runner) publishFailure(ctx context.Context, msg bus.Message, cause error) {
	out := bus.Message{Key: msg.Key, IdempotencyKey: msg.IdempotencyKey + FailedSuffix, Headers: replyHeaders(msg, nil)}
	out.Headers[HeaderReplyOf] = msg.IdempotencyKey
	out.Headers[HeaderReplyRoute] = rn.r.ID
	out.Headers[HeaderReplyStatus] = ReplyFailed
	out.Headers[HeaderReplyError] = mask.Text(cause.Error())
	class := "transient"
	switch {
	case errors.Is(cause, ErrInDoubt):
		class = "in_doubt"
	case isPermanent(cause):
		class = "permanent"
	case errors.Is(cause, context.DeadlineExceeded):
		class = "timeout"
	}
	out.Headers[HeaderReplyClass] = class
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rn.e.deps.Bus.Publish(pctx, rn.r.ReplyTo, out); err != nil {
		// The dead letter is stored; its replay answers later.
		rn.log.Error("failure answer not published", "topic", rn.r.ReplyTo, "err", err)
		rn.e.metrics.deliveries.WithLabelValues(rn.r.ID, replySinkName, "failed").Inc()
		return
	}
	rn.e.metrics.deliveries.WithLabelValues(rn.r.ID, replySinkName, "sent").Inc()
}

// replyHeaders are the request's headers without the engine's internal
// ones, overlaid with the answer's.
func replyHeaders(request bus.Message, answer map[string]string) map[string]string {
	h := make(map[string]string, len(request.Headers)+len(answer)+6)
	for k, v := range request.Headers {
		switch k {
		case HeaderResumeStep, bus.HeaderDeadLetterCause, bus.HeaderDeadLetterAttempts, bus.HeaderDeadLetterTopic, bus.HeaderDeadLetterAt:
		default:
			h[k] = v
		}
	}
	for k, v := range answer {
		h[k] = v
	}
	return h
}
