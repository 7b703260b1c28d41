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

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/monitor"
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

// Outbox states.
const (
	statePending   = "pending"
	stateSending   = "sending"
	stateInDoubt   = "indoubt"
	stateDelivered = "delivered"
	stateFailed    = "failed"
)

type outRow struct {
	id       int64
	okey     string
	ref      string
	body     []byte
	attempts int
}

// check outcomes of a re-check.
const (
	checkDelivered = "delivered"
	checkAbsent    = "absent"
)

// sender sends one kind of outbox row.
type sender struct {
	kind, partner, flow string
	// ordered: a row goes only once every earlier row of its okey is delivered.
	ordered bool
	// batch is how many rows one call carries.
	batch int
	// send calls the portal; the results are keyed by ref.
	send func(ctx context.Context, rows []outRow) (map[string]joblib.Result, error)
	// recheck asks the portal what it holds; the answer per ref is
	// checkDelivered, checkAbsent or a reason the row cannot be delivered.
	recheck func(ctx context.Context, rows []outRow) (map[string]string, error)
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
		{kind: kindNode, partner: PartnerJobLib, flow: FlowStatus, ordered: true, batch: s.cfg.SendBatch, send: s.sendNodes, recheck: s.recheckNodes},
		{kind: kindPush, partner: PartnerMianshen, flow: FlowPush, batch: 1, send: s.sendPush, recheck: s.recheckPush},
		{kind: kindConfirm, partner: PartnerMianshen, flow: FlowConfirm, batch: s.cfg.SendBatch, send: s.sendConfirms, recheck: s.recheckConfirms, delivered: s.confirmDelivered},
		{kind: kindPayout, partner: PartnerMianshen, flow: FlowPayout, batch: s.cfg.SendBatch, send: s.sendPayouts, recheck: s.recheckPayouts, delivered: s.payoutDelivered},
	}
}

// Drain re-checks the sends in doubt, then sends what is due, kind by
// kind, until nothing is due or a call fails (the rest waits for its
// back-off). One kind's failure does not hold up the others.
func (s *Service) Drain(ctx context.Context) error {
	var errs []error
	for _, sd := range s.senders() {
		if err := s.drainKind(ctx, sd); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sd.kind, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) drainKind(ctx context.Context, sd sender) error {
	if err := s.recheckInDoubt(ctx, sd); err != nil {
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
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT id, okey, ref, body, attempts FROM portal_outbox
		WHERE kind = ? AND state = 'pending' AND next_at <= ? ORDER BY id LIMIT ?`), sd.kind, s.now().UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("portal: outbox: %w", err)
	}
	var cand []outRow
	for rows.Next() {
		var r outRow
		if err := rows.Scan(&r.id, &r.okey, &r.ref, &r.body, &r.attempts); err != nil {
			rows.Close()
			return nil, err
		}
		cand = append(cand, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || !sd.ordered || len(cand) == 0 {
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

// sendRows sends one batch: marked sending (durably) before the call, so a
// crash during the call leaves them to be re-checked.
func (s *Service) sendRows(ctx context.Context, sd sender, rows []outRow) error {
	args := append([]any{}, idsOf(rows)...)
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'sending', attempts = attempts + 1 WHERE id IN `+inList(len(rows))), args...); err != nil {
		return fmt.Errorf("portal: outbox mark sending: %w", err)
	}
	for i := range rows {
		rows[i].attempts++
	}
	start := s.now()
	results, err := sd.send(ctx, rows)
	dur := s.now().Sub(start)
	if err != nil {
		state, class := stateInDoubt, "in_doubt"
		switch {
		case joblib.NotSent(err):
			state, class = statePending, "breaker"
		case joblib.IsRefused(err):
			state, class = statePending, "permanent"
		}
		next := s.now().Add(s.backoff(rows[0].attempts)).UnixMilli()
		msg := mask.Text(err.Error())
		uargs := append([]any{state, next, msg}, idsOf(rows)...)
		if _, uerr := s.db.ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE portal_outbox SET state = ?, next_at = ?, error = ? WHERE id IN `+inList(len(rows))), uargs...); uerr != nil {
			return errors.Join(err, fmt.Errorf("portal: outbox after a failed send: %w", uerr))
		}
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Failed, Status: monitor.Error,
			ExchangeID: sd.kind + ":" + rows[0].ref, Records: int64(len(rows)), RecordsFailed: int64(len(rows)), Duration: dur,
			Attempt: rows[0].attempts, ErrorClass: class, ErrorMessage: msg})
		s.sent.WithLabelValues(sd.kind, class).Add(float64(len(rows)))
		return err
	}
	var failed []outRow
	var reasons []string
	err = s.db.InTx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
		failed, reasons = nil, nil
		now := s.now()
		var delivered []any // rows without a hook, settled in one statement
		for _, r := range rows {
			res := results[r.ref]
			switch {
			case joblib.Delivered(res.Outcome) && sd.delivered == nil:
				delivered = append(delivered, r.id)
			case joblib.Delivered(res.Outcome):
				if err := s.settle(ctx, tx, sd, r, now); err != nil {
					return err
				}
			case res.Outcome == joblib.OutcomeOutOfOrder:
				// An earlier node is missing at the portal: re-check it first.
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'pending', next_at = ?, error = ? WHERE id = ?`),
					now.Add(s.backoff(r.attempts)).UnixMilli(), res.Reason, r.id); err != nil {
					return err
				}
			default:
				reason := res.Outcome + ": " + res.Reason
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'failed', error = ? WHERE id = ?`), reason, r.id); err != nil {
					return err
				}
				failed, reasons = append(failed, r), append(reasons, reason)
			}
		}
		if len(delivered) > 0 {
			args := append([]any{now.UnixMilli()}, delivered...)
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'delivered', delivered_at = ?, error = '' WHERE id IN `+inList(len(delivered))), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("portal: outbox settle: %w", err)
	}
	for i, r := range failed {
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Rejected, Status: monitor.Error,
			ExchangeID: sd.kind + ":" + r.ref, PartnerRef: r.ref, ErrorClass: "permanent", ErrorMessage: reasons[i]})
	}
	st := monitor.OK
	if len(failed) > 0 {
		st = monitor.Warning
	}
	s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Sent, Status: st,
		ExchangeID: sd.kind + ":" + rows[0].ref, Records: int64(len(rows) - len(failed)), RecordsFailed: int64(len(failed)), Duration: dur, Attempt: rows[0].attempts})
	s.sent.WithLabelValues(sd.kind, "delivered").Add(float64(len(rows) - len(failed)))
	s.sent.WithLabelValues(sd.kind, "failed").Add(float64(len(failed)))
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

// recheckInDoubt asks the portal about every row in doubt (and every row
// left sending by a stop): delivered rows are settled, absent ones go back
// to pending, and only then is anything sent again.
func (s *Service) recheckInDoubt(ctx context.Context, sd sender) error {
	for ctx.Err() == nil {
		rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT id, okey, ref, body, attempts FROM portal_outbox
			WHERE kind = ? AND (state = 'sending' OR (state = 'indoubt' AND next_at <= ?)) ORDER BY id LIMIT ?`), sd.kind, s.now().UnixMilli(), max(sd.batch, 100))
		if err != nil {
			return fmt.Errorf("portal: outbox in doubt: %w", err)
		}
		var doubt []outRow
		for rows.Next() {
			var r outRow
			if err := rows.Scan(&r.id, &r.okey, &r.ref, &r.body, &r.attempts); err != nil {
				rows.Close()
				return err
			}
			doubt = append(doubt, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(doubt) == 0 {
			return nil
		}
		start := s.now()
		answer, err := sd.recheck(ctx, doubt)
		if err != nil {
			next := s.now().Add(s.backoff(doubt[0].attempts)).UnixMilli()
			uargs := append([]any{next}, idsOf(doubt)...)
			if _, uerr := s.db.ExecContext(context.WithoutCancel(ctx), s.db.Rebind(`UPDATE portal_outbox SET state = 'indoubt', next_at = ? WHERE id IN `+inList(len(doubt))), uargs...); uerr != nil {
				return errors.Join(err, uerr)
			}
			s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Failed, Status: monitor.Error,
				ExchangeID: "recheck:" + doubt[0].ref, Records: int64(len(doubt)), RecordsFailed: int64(len(doubt)), Duration: s.now().Sub(start),
				ErrorClass: errClass(err), ErrorMessage: mask.Text(err.Error()), Attrs: map[string]string{"step": "recheck"}})
			return err
		}
		var settled, resend int
		err = s.db.InTx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
			settled, resend = 0, 0
			now := s.now()
			for _, r := range doubt {
				switch a := answer[r.ref]; a {
				case checkDelivered:
					settled++
					if err := s.settle(ctx, tx, sd, r, now); err != nil {
						return err
					}
				case checkAbsent, "":
					resend++
					if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'pending', next_at = ? WHERE id = ?`), now.UnixMilli(), r.id); err != nil {
						return err
					}
				default:
					if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_outbox SET state = 'failed', error = ? WHERE id = ?`), a, r.id); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("portal: outbox re-check: %w", err)
		}
		s.emit(monitor.Event{Partner: sd.partner, Flow: sd.flow, Direction: monitor.Outbound, Type: monitor.Reconciled, Status: monitor.OK,
			ExchangeID: "recheck:" + doubt[0].ref, Records: int64(len(doubt)), Duration: s.now().Sub(start),
			Attrs: map[string]string{"delivered": fmt.Sprint(settled), "resend": fmt.Sprint(resend)}})
	}
	return ctx.Err()
}

// --- nodes ---

func decodeRows[T any](rows []outRow) ([]T, error) {
	out := make([]T, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.body, &out[i]); err != nil {
			return nil, fmt.Errorf("portal: outbox row %d: %w", r.id, err)
		}
	}
	return out, nil
}

func (s *Service) sendNodes(ctx context.Context, rows []outRow) (map[string]joblib.Result, error) {
	nodes, err := decodeRows[joblib.Node](rows)
	if err != nil {
		return nil, err
	}
	return s.d.Client.PushNodes(ctx, nodes)
}

func (s *Service) recheckNodes(ctx context.Context, rows []outRow) (map[string]string, error) {
	nodes, err := decodeRows[joblib.Node](rows)
	if err != nil {
		return nil, err
	}
	var ids []string
	seen := map[string]bool{}
	for _, n := range nodes {
		if !seen[n.ApplicationID] {
			seen[n.ApplicationID] = true
			ids = append(ids, n.ApplicationID)
		}
	}
	st, err := s.d.Client.NodeStatus(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for i, n := range nodes {
		x := st[n.ApplicationID]
		switch {
		case !x.Known:
			out[rows[i].ref] = "unknown: the job library does not know the application"
		case x.LastSeq >= n.Seq:
			out[rows[i].ref] = checkDelivered
		default:
			out[rows[i].ref] = checkAbsent
		}
	}
	return out, nil
}

// --- pushes ---

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

func (s *Service) sendPush(ctx context.Context, rows []outRow) (map[string]joblib.Result, error) {
	out := map[string]joblib.Result{}
	for _, r := range rows {
		p, err := s.openPush(r)
		if err != nil {
			return nil, err
		}
		if _, err := s.d.Client.PushPersons(ctx, p); err != nil {
			return nil, err
		}
		out[r.ref] = joblib.Result{ID: r.ref, Outcome: joblib.OutcomeOK}
	}
	return out, nil
}

func (s *Service) recheckPush(ctx context.Context, rows []outRow) (map[string]string, error) {
	out := map[string]string{}
	for _, r := range rows {
		p, err := s.openPush(r)
		if err != nil {
			return nil, err
		}
		_, err = s.d.Client.PushStatus(ctx, r.ref, len(p.Persons))
		switch {
		case errors.Is(err, joblib.ErrNotFound):
			out[r.ref] = checkAbsent
		case err != nil:
			return nil, err
		default:
			out[r.ref] = checkDelivered
		}
	}
	return out, nil
}

// --- confirmations ---

func (s *Service) sendConfirms(ctx context.Context, rows []outRow) (map[string]joblib.Result, error) {
	cs, err := decodeRows[joblib.Confirmation](rows)
	if err != nil {
		return nil, err
	}
	return s.d.Client.Confirm(ctx, cs)
}

func (s *Service) recheckConfirms(ctx context.Context, rows []outRow) (map[string]string, error) {
	cs, err := decodeRows[joblib.Confirmation](rows)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.CaseID
	}
	st, err := s.d.Client.CaseStatus(ctx, dedupe(ids))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, c := range cs {
		x := st[c.CaseID]
		switch {
		case !x.Known:
			out[rows[i].ref] = "unknown: the portal does not know the case"
		case x.Decision == c.Decision:
			out[rows[i].ref] = checkDelivered
		case x.Decision == "":
			out[rows[i].ref] = checkAbsent
		default:
			out[rows[i].ref] = "conflict: the portal holds decision " + x.Decision
		}
	}
	return out, nil
}

func (s *Service) confirmDelivered(ctx context.Context, tx *sql.Tx, r outRow) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET confirmed_at = ? WHERE case_id = ? AND decision = 'confirm'`), s.now().UnixMilli(), r.okey)
	return err
}

// --- payouts ---

func (s *Service) sendPayouts(ctx context.Context, rows []outRow) (map[string]joblib.Result, error) {
	ps, err := decodeRows[joblib.Payout](rows)
	if err != nil {
		return nil, err
	}
	return s.d.Client.Payouts(ctx, ps)
}

func (s *Service) recheckPayouts(ctx context.Context, rows []outRow) (map[string]string, error) {
	ps, err := decodeRows[joblib.Payout](rows)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.CaseID
	}
	st, err := s.d.Client.CaseStatus(ctx, dedupe(ids))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, p := range ps {
		x := st[p.CaseID]
		out[rows[i].ref] = checkAbsent
		if !x.Known {
			out[rows[i].ref] = "unknown: the portal does not know the case"
		}
		for _, id := range x.PayoutIDs {
			if id == p.PayoutID {
				out[rows[i].ref] = checkDelivered
			}
		}
	}
	return out, nil
}

func (s *Service) payoutDelivered(ctx context.Context, tx *sql.Tx, r outRow) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_cases SET payout_state = 'reported' WHERE case_id = ?`), r.okey)
	return err
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
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
