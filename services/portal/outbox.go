package portal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Outbox kinds.
const (
	kindNode    = "node"
	kindPush    = "push"
	kindConfirm = "confirm"
	kindPayout  = "payout"
)

// Outbox states. pending: waiting for its turn; sending: published on
// portal.out.<op> under the batch key bkey, waiting for the route's answer
// on portal.answers; delivered, failed (refused, waiting for an operator)
// and skipped are settled.
const (
	statePending   = "pending"
	stateSending   = "sending"
	stateDelivered = "delivered"
	stateFailed    = "failed"
)

// waitAnswer is the next_at of a published batch: it waits for its
// answer, and is published again (under its key) only after a restart or
// a publish that failed.
const waitAnswer = int64(1) << 62

type outRow struct {
	id       int64
	okey     string
	ref      string
	body     []byte
	attempts int
	sentAt   int64
}

// sender publishes one kind of outbox row.
type sender struct {
	kind, op, partner, flow string
	// ordered: a row goes only once every earlier row of its okey is delivered.
	ordered bool
	// batch is how many rows one call carries.
	batch int
	// delivered updates the service's tables once a row is delivered.
	delivered func(ctx context.Context, tx *sql.Tx, r outRow) error
}

func (s *Service) enqueue(ctx context.Context, tx *sql.Tx, kind, okey, ref string, body []byte) error {
	now := s.now().UnixMilli()
	_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_outbox (kind, okey, ref, body, state, next_at, created_at)
		VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (kind, ref) DO NOTHING`), kind, okey, ref, body, now, now)
	return err
}

func (s *Service) senders() []sender {
	return []sender{
		{kind: kindNode, op: joblib.OpNodes, partner: PartnerJobLib, flow: FlowStatus, ordered: true, batch: s.cfg.SendBatch},
		{kind: kindPush, op: joblib.OpPush, partner: PartnerMianshen, flow: FlowPush, batch: 1},
		{kind: kindConfirm, op: joblib.OpConfirm, partner: PartnerMianshen, flow: FlowConfirm, batch: s.cfg.SendBatch, delivered: s.confirmDelivered},
		{kind: kindPayout, op: joblib.OpPayout, partner: PartnerMianshen, flow: FlowPayout, batch: s.cfg.SendBatch, delivered: s.payoutDelivered},
	}
}

func (s *Service) senderOf(kind string) (sender, bool) {
	for _, sd := range s.senders() {
		if sd.kind == kind {
			return sd, true
		}
	}
	return sender{}, false
}

// Drain publishes, kind by kind, the batches an earlier run or a failed
// publish left unpublished (under their keys), then what is due, until
// nothing is due. The routes deliver them and answer on portal.answers.
// One kind's failure does not hold up the others.
func (s *Service) Drain(ctx context.Context) error {
	var errs []error
	for _, sd := range s.senders() {
		if err := s.drainKind(ctx, sd); err != nil {
			s.stepFailed(ctx, sd.partner, sd.flow, "outbox "+sd.kind, err)
			errs = append(errs, fmt.Errorf("%s: %w", sd.kind, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) drainKind(ctx context.Context, sd sender) error {
	if err := s.republish(ctx, sd); err != nil {
		return err
	}
	for ctx.Err() == nil {
		rows, err := s.due(ctx, sd)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		if err := s.sendRows(ctx, sd, rows); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// due picks the pending rows whose time has come, at most one batch; for
// an ordered kind only those whose earlier rows are delivered or go in the
// same batch before them.
func (s *Service) due(ctx context.Context, sd sender) ([]outRow, error) {
	limit := sd.batch
	if sd.ordered {
		limit = sd.batch * 2
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT id, okey, ref, body, attempts, sent_at FROM portal_outbox
		WHERE kind = ? AND state = 'pending' AND next_at <= ? ORDER BY id LIMIT ?`), sd.kind, s.now().UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("portal: outbox: %w", err)
	}
	cand, err := scanRows(rows)
	if err != nil || !sd.ordered || len(cand) == 0 {
		return cand[:min(len(cand), sd.batch)], err
	}
	// Every undelivered row of the candidates' keys, in order.
	keys := map[string]bool{}
	args := []any{sd.kind}
	for _, r := range cand {
		if !keys[r.okey] {
			keys[r.okey] = true
			args = append(args, r.okey)
		}
	}
	q := `SELECT okey, id FROM portal_outbox WHERE kind = ? AND state NOT IN ('delivered', 'skipped') AND okey IN (?` + strings.Repeat(",?", len(keys)-1) + `) ORDER BY id`
	urows, err := s.db.QueryContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("portal: outbox order: %w", err)
	}
	undelivered := map[string][]int64{}
	for urows.Next() {
		var k string
		var id int64
		if err := urows.Scan(&k, &id); err != nil {
			urows.Close()
			return nil, err
		}
		undelivered[k] = append(undelivered[k], id)
	}
	urows.Close()
	if err := urows.Err(); err != nil {
		return nil, err
	}
	// A candidate goes when every undelivered row of its key before it
	// goes too (in this batch, ahead of it).
	pos := map[string]int{}
	var out []outRow
	for _, r := range cand {
		u := undelivered[r.okey]
		i := pos[r.okey]
		if i < 0 || i >= len(u) || u[i] != r.id {
			pos[r.okey] = -1
			continue
		}
		pos[r.okey] = i + 1
		out = append(out, r)
		if len(out) == sd.batch {
			break
		}
	}
	return out, nil
}

func scanRows(rows *sql.Rows) ([]outRow, error) {
	defer rows.Close()
	var out []outRow
	for rows.Next() {
		var r outRow
		if err := rows.Scan(&r.id, &r.okey, &r.ref, &r.body, &r.attempts, &r.sentAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Service) backoff(attempts int) time.Duration {
	d := s.cfg.RetryWait
	for i := 1; i < attempts && d < s.cfg.RetryMaxWait; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMaxWait)
	return d - time.Duration(rand.Int64N(int64(d)/5+1)) // up to 20% less, so retries spread
}

func idsOf(rows []outRow) []any {
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r.id
	}
	return out
}

func inList(n int) string { return "(?" + strings.Repeat(",?", n-1) + ")" }

// batchKey is the bus key of a batch: new for every publication of rows
// taken from pending (a row sent again after an out-of-order answer or an
// operator's retry goes under a new key), kept on the rows so that the
// same batch is published again under the same key.
func (s *Service) batchKey(ctx context.Context, tx *sql.Tx, kind string) (string, error) {
	v, err := s.mark(ctx, tx, markBatchSeq)
	if err != nil {
		return "", err
	}
	var seq int64
	_, _ = fmt.Sscan(v, &seq)
	seq++
	if err := s.setMark(ctx, tx, markBatchSeq, fmt.Sprint(seq)); err != nil {
		return "", err
	}
	return fmt.Sprintf("portal/%s/%d", kind, seq), nil
}

// sendRows takes one batch from pending: its rows are marked sending under
// a new batch key in one transaction, then the batch is published. A crash
// or a failed publish in between leaves them sending; they are published
// again under the same key (republish).
func (s *Service) sendRows(ctx context.Context, sd sender, rows []outRow) error {
	var key string
	now := s.now().UnixMilli()
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if key, err = s.batchKey(ctx, tx, sd.kind); err != nil {
			return err
		}
		args := append([]any{key, waitAnswer, now}, idsOf(rows)...)
		res, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'sending', bkey = ?, next_at = ?, sent_at = ?, attempts = attempts + 1
			WHERE state = 'pending' AND id IN `+inList(len(rows))), args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != int64(len(rows)) {
			return fmt.Errorf("portal: outbox: %d of %d rows no longer pending", len(rows)-int(n), len(rows))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("portal: outbox mark sending: %w", err)
	}
	for i := range rows {
		rows[i].attempts++
		rows[i].sentAt = now
	}
	return s.publish(ctx, sd, key, rows)
}

// republish publishes again, under their keys, the batches left sending
// whose publication is due (after a restart, or a publish that failed).
func (s *Service) republish(ctx context.Context, sd sender) error {
	for ctx.Err() == nil {
		var key string
		err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT bkey FROM portal_outbox WHERE kind = ? AND state = 'sending' AND next_at <= ? ORDER BY id LIMIT 1`),
			sd.kind, s.now().UnixMilli()).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("portal: outbox republish: %w", err)
		}
		rows, err := s.batchRows(ctx, key)
		if err != nil {
			return err
		}
		if err := s.publish(ctx, sd, key, rows); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (s *Service) batchRows(ctx context.Context, key string) ([]outRow, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT id, okey, ref, body, attempts, sent_at FROM portal_outbox
		WHERE bkey = ? AND state = 'sending' ORDER BY id`), key)
	if err != nil {
		return nil, fmt.Errorf("portal: outbox batch %s: %w", key, err)
	}
	return scanRows(rows)
}

// Headers of the batches the service publishes (the routes' answers keep
// them).
const (
	// HeaderBatch is the batch's key.
	HeaderBatch = "portal-batch"
	// HeaderKind is the outbox kind of the batch (node, push, confirm, payout).
	HeaderKind = "portal-kind"
)

// publish puts one batch on portal.out.<op>; the rows wait for the answer.
// A publish that fails leaves them sending, published again after a
// back-off.
func (s *Service) publish(ctx context.Context, sd sender, key string, rows []outRow) error {
	if len(rows) == 0 {
		return nil // answered meanwhile
	}
	b, err := s.batchOf(sd, rows)
	if err == nil {
		var body []byte
		if body, err = json.Marshal(b); err == nil {
			err = s.d.Bus.Publish(ctx, OutTopic(sd.op), bus.Message{Key: key, IdempotencyKey: key, Body: body,
				Headers: map[string]string{HeaderBatch: key, HeaderKind: sd.kind, "Content-Type": "application/json"}})
		}
	}
	next := waitAnswer
	if err != nil {
		next = s.now().Add(s.backoff(rows[0].attempts)).UnixMilli()
	}
	if _, uerr := s.db.ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE portal_outbox SET next_at = ? WHERE bkey = ? AND state = 'sending'`), next, key); uerr != nil {
		return errors.Join(err, fmt.Errorf("portal: outbox after publishing: %w", uerr))
	}
	if err != nil {
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Failed, Status: monitor.Error,
			ExchangeID: key, Records: int64(len(rows)), RecordsFailed: int64(len(rows)), Attempt: rows[0].attempts,
			ErrorClass: "bus", ErrorMessage: mask.Text(err.Error())})
		return monitor.Reported(fmt.Errorf("portal: publish %s: %w", key, err))
	}
	return nil
}

// batchOf builds the joblib.Batch of rows.
func (s *Service) batchOf(sd sender, rows []outRow) (joblib.Batch, error) {
	b := joblib.Batch{Op: sd.op}
	var err error
	switch sd.kind {
	case kindNode:
		b.Nodes, err = decodeRows[joblib.Node](rows)
	case kindPush:
		if len(rows) != 1 {
			return b, fmt.Errorf("portal: a push batch carries one push, not %d", len(rows))
		}
		var p joblib.Push
		p, err = s.openPush(rows[0])
		b.Push = &p
	case kindConfirm:
		b.Confirmations, err = decodeRows[joblib.Confirmation](rows)
	case kindPayout:
		b.Payouts, err = decodeRows[joblib.Payout](rows)
	}
	return b, err
}

// applyAnswer settles the rows of the batch a route answered: delivered
// (ok, duplicate; a push acknowledged), out of order (pending again after
// a back-off: its application's earlier node goes first), refused (failed
// with the portal's reason, for the operators). A failure answer (the
// route dead-lettered the batch) puts the rows back to pending after a
// back-off, or, when permanent (the portal refused the call whole, or the
// batch broke its rules), fails them with the reason. An answer to a batch
// no longer sending (a redelivery) changes nothing.
func (s *Service) applyAnswer(ctx context.Context, msg bus.Message) error {
	key := msg.Headers[HeaderBatch]
	sd, ok := s.senderOf(msg.Headers[HeaderKind])
	if key == "" || !ok {
		s.log.Warn("portal: an answer without its batch (dropped)", "of", mask.Text(msg.Headers[routes.HeaderReplyOf]))
		return nil
	}
	failed := msg.Headers[routes.HeaderReplyStatus] == routes.ReplyFailed
	var a joblib.Answer
	var bad error
	if !failed {
		if a, bad = joblib.DecodeAnswer(msg.Body); bad == nil && a.Op != sd.op {
			bad = fmt.Errorf("an answer of op %s to a %s batch", a.Op, sd.op)
		}
	}
	results := map[string]joblib.Result{}
	for _, r := range a.Results {
		results[r.ID] = r
	}
	type refusal struct {
		r      outRow
		reason string
	}
	var refused []refusal
	var rows []outRow
	var delivered, again int
	err := s.db.InTx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
		refused, delivered, again = nil, 0, 0
		q, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT id, okey, ref, body, attempts, sent_at FROM portal_outbox
			WHERE bkey = ? AND state = 'sending' ORDER BY id`), key)
		if err != nil {
			return err
		}
		if rows, err = scanRows(q); err != nil {
			return err
		}
		now := s.now()
		pending := func(r outRow, reason string) error {
			again++
			_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'pending', next_at = ?, error = ? WHERE id = ?`),
				now.Add(s.backoff(r.attempts)).UnixMilli(), mask.Text(reason), r.id)
			return err
		}
		fail := func(r outRow, reason string) error {
			refused = append(refused, refusal{r, reason})
			_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'failed', error = ? WHERE id = ?`), mask.Text(reason), r.id)
			return err
		}
		for _, r := range rows {
			var err error
			switch {
			case failed:
				reason := msg.Headers[routes.HeaderReplyError]
				if class := msg.Headers[routes.HeaderReplyClass]; class == "permanent" {
					err = fail(r, "permanent: "+reason)
				} else {
					err = pending(r, class+": "+reason)
				}
			case bad != nil:
				err = pending(r, "the answer is not readable: "+bad.Error())
			case sd.kind == kindPush:
				delivered++
				err = s.settle(ctx, tx, sd, r, now)
			default:
				res, ok := results[r.ref]
				switch {
				case !ok:
					err = pending(r, "the answer has no result for "+r.ref)
				case joblib.Delivered(res.Outcome):
					delivered++
					err = s.settle(ctx, tx, sd, r, now)
				case res.Outcome == joblib.OutcomeOutOfOrder:
					err = pending(r, res.Outcome+": "+res.Reason)
				default:
					err = fail(r, res.Outcome+": "+res.Reason)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("portal: apply the answer to %s: %w", key, err)
	}
	if len(rows) == 0 {
		return nil // answered before: a redelivery
	}
	dur := s.now().Sub(time.UnixMilli(rows[0].sentAt))
	for _, f := range refused {
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Rejected, Status: monitor.Error,
			ExchangeID: sd.kind + ":" + f.r.ref, PartnerRef: f.r.ref, ErrorClass: "permanent", ErrorMessage: mask.Text(f.reason)})
	}
	attrs := map[string]string{"batch": key}
	if v := msg.Headers[routes.HeaderReplyVia]; v != "" {
		attrs["via"] = v
	}
	switch {
	case failed || bad != nil:
		class, reason := msg.Headers[routes.HeaderReplyClass], msg.Headers[routes.HeaderReplyError]
		if bad != nil {
			class, reason = "format", bad.Error()
		}
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Failed, Status: monitor.Error,
			ExchangeID: sd.kind + ":" + rows[0].ref, Records: int64(len(rows)), RecordsFailed: int64(len(rows)), Duration: dur,
			Attempt: rows[0].attempts, ErrorClass: class, ErrorMessage: mask.Text(reason), Attrs: attrs})
		outcome := "retry"
		if len(refused) > 0 {
			outcome = "failed"
		}
		s.sent.WithLabelValues(sd.kind, outcome).Add(float64(len(rows)))
	default:
		st := monitor.OK
		if len(refused) > 0 || again > 0 {
			st = monitor.Warning
		}
		if again > 0 {
			attrs["out_of_order"] = fmt.Sprint(again)
		}
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Sent, Status: st,
			ExchangeID: sd.kind + ":" + rows[0].ref, Records: int64(delivered), RecordsFailed: int64(len(refused)), Duration: dur,
			Attempt: rows[0].attempts, Attrs: attrs})
		s.sent.WithLabelValues(sd.kind, "delivered").Add(float64(delivered))
		s.sent.WithLabelValues(sd.kind, "failed").Add(float64(len(refused)))
		s.sent.WithLabelValues(sd.kind, "out_of_order").Add(float64(again))
	}
	s.poke()
	return nil
}

func (s *Service) settle(ctx context.Context, tx *sql.Tx, sd sender, r outRow, now time.Time) error {
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'delivered', delivered_at = ?, error = '' WHERE id = ?`), now.UnixMilli(), r.id); err != nil {
		return err
	}
	if sd.delivered != nil {
		return sd.delivered(ctx, tx, r)
	}
	return nil
}

func decodeRows[T any](rows []outRow) ([]T, error) {
	out := make([]T, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.body, &out[i]); err != nil {
			return nil, fmt.Errorf("portal: outbox row %d: %w", r.id, err)
		}
	}
	return out, nil
}

func (s *Service) openPush(r outRow) (joblib.Push, error) {
	var p joblib.Push
	plain, err := s.d.Fields.Open(r.body)
	if err != nil {
		return p, fmt.Errorf("portal: open push %s: %w", r.ref, err)
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return p, fmt.Errorf("portal: push %s: %w", r.ref, err)
	}
	return p, nil
}

func (s *Service) confirmDelivered(ctx context.Context, tx *sql.Tx, r outRow) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET confirmed_at = ? WHERE case_id = ? AND decision = 'confirm'`), s.now().UnixMilli(), r.okey)
	return err
}

func (s *Service) payoutDelivered(ctx context.Context, tx *sql.Tx, r outRow) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET payout_state = 'reported' WHERE case_id = ?`), r.okey)
	return err
}

// stateSkipped: an operator skipped a refused row; it is never sent, and
// the later rows of its key go as if it were delivered.
const stateSkipped = "skipped"

// Operator actions on a refused (failed) outbox row.
const (
	// ActionRetry sends the row again (after the cause was fixed at the portal or in the business system).
	ActionRetry = "retry"
	// ActionSkip gives the row up, so that the later nodes of its application go.
	ActionSkip = "skip"
)

// RefusedRow is an outbox row the portal refused (or that could not be
// delivered), waiting for an operator.
type RefusedRow struct {
	// ID is the row's id (for ResolveRefused).
	ID int64 `json:"id"`
	// Kind is node, push, confirm or payout.
	Kind string `json:"kind"`
	// Key is the application or case the row belongs to.
	Key string `json:"key"`
	// Ref is the row's key at the portal.
	Ref string `json:"ref"`
	// Error is the portal's reason (masked).
	Error string `json:"error"`
	// Blocked counts the later rows of the same key held back by it.
	Blocked int64 `json:"blocked"`
}

// RefusedRows lists the refused outbox rows, oldest first.
func (s *Service) RefusedRows(ctx context.Context, limit int) ([]RefusedRow, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT o.id, o.kind, o.okey, o.ref, o.error,
		(SELECT COUNT(*) FROM portal_outbox l WHERE l.kind = o.kind AND l.okey = o.okey AND l.id > o.id AND l.state = 'pending')
		FROM portal_outbox o WHERE o.state = 'failed' ORDER BY o.id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("portal: refused rows: %w", err)
	}
	defer rows.Close()
	var out []RefusedRow
	for rows.Next() {
		var r RefusedRow
		if err := rows.Scan(&r.ID, &r.Kind, &r.Key, &r.Ref, &r.Error, &r.Blocked); err != nil {
			return nil, err
		}
		r.Error = mask.Text(r.Error)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ResolveRefused carries out an operator's action on a refused row:
// retry puts it back in the queue (sent at the next round, in its place
// before the later rows of its key), skip gives it up so the later rows
// go. Only a refused row can be acted on (ErrNoRow otherwise); the action
// is audited, refused attempts too.
func (s *Service) ResolveRefused(ctx context.Context, id int64, action, user string) error {
	if action != ActionRetry && action != ActionSkip {
		return fmt.Errorf("%w: action %q: want retry or skip", ErrBadRecord, action)
	}
	object := fmt.Sprintf("outbox/%d", id)
	var kind, ref string
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT kind, ref FROM portal_outbox WHERE id = ? AND state = 'failed'`), id).Scan(&kind, &ref); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: outbox row %d is not refused", ErrNoRow, id)
			}
			return err
		}
		if action == ActionRetry {
			_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'pending', next_at = ?, attempts = 0, error = '' WHERE id = ?`), s.now().UnixMilli(), id)
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'skipped' WHERE id = ?`), id)
		return err
	})
	outcome := audit.OutcomeSuccess
	if err != nil {
		outcome = audit.OutcomeFailure
	}
	if aerr := s.auditf(ctx, user, "outbox."+action, object, outcome, "%s %s", kind, ref); aerr != nil && err == nil {
		return fmt.Errorf("portal: audit: %w", aerr)
	}
	if err != nil {
		return err
	}
	s.emit(monitor.Event{Partner: partnerOf(kind), Flow: flowOf(kind), Direction: monitor.Outbound, Type: monitor.Replayed, Status: monitor.OK,
		ExchangeID: kind + ":" + ref, PartnerRef: ref, Attrs: map[string]string{"action": action, "by": user}})
	return nil
}

func (s *Service) auditf(ctx context.Context, actor, action, object, outcome, f string, a ...any) error {
	if s.d.Audit == nil {
		return nil
	}
	_, err := s.d.Audit.Append(ctx, audit.Record{Time: s.now(), Actor: audit.UserActor(actor), Action: "portal." + action,
		Object: object, Outcome: outcome, Detail: fmt.Sprintf(f, a...)})
	return err
}

func partnerOf(kind string) string {
	if kind == kindNode {
		return PartnerJobLib
	}
	return PartnerMianshen
}

func flowOf(kind string) string {
	for _, sd := range []struct{ k, f string }{{kindNode, FlowStatus}, {kindPush, FlowPush}, {kindConfirm, FlowConfirm}, {kindPayout, FlowPayout}} {
		if sd.k == kind {
			return sd.f
		}
	}
	return FlowStatus
}
