package portal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/monitor"
)

// takeApplication records a new application with its channel and queues
// its 预审; taken is false when the hub had it already, held is true when
// it waits for its item's first register.
func (s *Service) takeApplication(ctx context.Context, tx *sql.Tx, a *joblib.Application) (taken, held bool, err error) {
	item, ok := s.items[a.ItemCode]
	if !ok {
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_refused WHERE source = 'applications' AND ref = ?`), a.ApplicationID).Scan(&n); err != nil {
			return false, false, err
		}
		if n > 0 {
			return false, false, nil
		}
		return false, false, s.refuse(ctx, tx, "applications", a.ApplicationID, 0, fmt.Sprintf("%v: %s", ErrUnknownItem, a.ItemCode))
	}
	key, sealed, err := s.person(a.Applicant.IDNumber)
	if err != nil {
		return false, false, err
	}
	now := s.now()
	res, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_applications (application_id, item_code, channel, terminal_id, division,
		person_key, person_sealed, month, submitted_at, received_at, stage, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)
		ON CONFLICT (application_id) DO NOTHING`),
		a.ApplicationID, a.ItemCode, a.Channel, a.TerminalID, a.Division, key, sealed, monthOf(a.SubmittedAt), a.SubmittedAt.UnixMilli(), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, false, nil
	}
	// 预审: the hub checks what it can see.
	reason, err := s.prereview(ctx, tx, a, key)
	if err != nil {
		return false, false, err
	}
	if reason != "" {
		return true, false, s.queueNode(ctx, tx, a.ApplicationID, joblib.NodePreReview, joblib.ResultReject, reason, "", now)
	}
	if err := s.queueNode(ctx, tx, a.ApplicationID, joblib.NodePreReview, joblib.ResultPass, "", "", now); err != nil {
		return false, false, err
	}
	if item.Answer == AnswerRegister {
		// Answered from the register once the hub has one for the item:
		// an application that arrives before the business system's first
		// register waits (预审 passed) and is answered when the register is
		// taken (answerHeld), never refused for a list the hub has not
		// seen yet; the monitor expects the register (expectRegister).
		has, err := s.hasRegister(ctx, tx, item.Code)
		if err != nil || !has {
			return true, err == nil, err
		}
		return true, false, s.answerFromRegister(ctx, tx, item, a.ApplicationID, a.Applicant.IDNumber, key, now)
	}
	return true, false, nil
}

// hasRegister reports whether a register of the item has been taken (any
// person recorded for it).
func (s *Service) hasRegister(ctx context.Context, tx *sql.Tx, item string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM (SELECT 1 FROM portal_eligible WHERE item_code = ? LIMIT 1) r`), item).Scan(&n)
	return n > 0, err
}

// waitingForRegister selects the applications of an item (first argument)
// that wait for its register: 预审 passed (second argument), nothing more.
const waitingForRegister = `item_code = ? AND closed = 0 AND stage = ?`

// answerHeld answers the applications of a register-answered item that
// waited for its register (预审 passed, nothing more), in the order they
// arrived, now that a register was taken in tx; it returns how many.
func (s *Service) answerHeld(ctx context.Context, tx *sql.Tx, item *compiledItem) (int, error) {
	rows, err := tx.QueryContext(ctx, s.db.Rebind(`SELECT application_id, person_key, person_sealed FROM portal_applications
		WHERE `+waitingForRegister+` ORDER BY received_at, application_id`), item.Code, joblib.NodePreReview)
	if err != nil {
		return 0, err
	}
	type held struct{ id, key, sealed string }
	var hs []held
	for rows.Next() {
		var h held
		if err := rows.Scan(&h.id, &h.key, &h.sealed); err != nil {
			rows.Close()
			return 0, err
		}
		hs = append(hs, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	now := s.now()
	for _, h := range hs {
		id, err := s.d.Fields.Decrypt(h.sealed)
		if err != nil {
			return 0, fmt.Errorf("portal: held application %s: %w", h.id, err)
		}
		if err := s.answerFromRegister(ctx, tx, item, h.id, id, h.key, now); err != nil {
			return 0, err
		}
	}
	return len(hs), nil
}

// RegisterExpectation names the monitor's expectation of an item's first
// register while applications wait for it.
func RegisterExpectation(item string) string { return "register " + item + " for waiting applications" }

// expectRegisters registers, again, the expectation of each register that
// applications wait for (a round's step): a registration that failed after
// an application's commit is made at the next round. Registering again is a
// no-op (same name, same due time).
func (s *Service) expectRegisters(ctx context.Context) error {
	var errs []error
	for _, code := range s.itemCodes() {
		if s.items[code].Answer == AnswerRegister {
			errs = append(errs, s.expectRegister(ctx, code))
		}
	}
	return errors.Join(errs...)
}

// expectRegister tells the monitor that applications of item wait for its
// first register: due RegisterWait after the oldest of them arrived, met
// by the event that says they were answered (reconciled, from an
// eligible-<ITEM>-*.csv file). Missed, it is red on the console and raises
// an alert, so citizens are not left waiting unseen. Called after the
// application's commit; counting events from the oldest arrival keeps a
// register taken in between from being missed.
func (s *Service) expectRegister(ctx context.Context, item string) error {
	if s.d.Expect == nil {
		return nil
	}
	var oldest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT MIN(received_at) FROM portal_applications
		WHERE `+waitingForRegister), item, joblib.NodePreReview).Scan(&oldest); err != nil {
		return err
	}
	if !oldest.Valid {
		return nil // answered meanwhile
	}
	from := time.UnixMilli(oldest.Int64)
	return s.d.Expect.Expect(ctx, monitor.Expectation{Name: RegisterExpectation(item), Partner: PartnerBusiness, Flow: FlowInbox,
		Type: monitor.Reconciled, FilePattern: "eligible-" + item + "-*.csv", From: from, Due: from.Add(s.cfg.RegisterWait)})
}

// prereview returns why the application fails 预审, "" when it passes: the
// applicant is recorded deceased, or has an application of the item in
// process already.
func (s *Service) prereview(ctx context.Context, tx *sql.Tx, a *joblib.Application, key string) (string, error) {
	var n int
	if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_eligible WHERE person_key = ? AND status = 'deceased'`), key).Scan(&n); err != nil {
		return "", err
	}
	if n > 0 {
		return "申请人已登记死亡", nil
	}
	var other string
	err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT application_id FROM portal_applications WHERE person_key = ? AND item_code = ?
		AND application_id <> ? AND closed = 0 ORDER BY received_at LIMIT 1`), key, a.ItemCode, a.ApplicationID).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", err
	}
	return "同一事项已有在办申请 " + other, nil
}

// answerFromRegister answers an item the hub decides itself (救助证明):
// 受理, 办理 and 办结 with the certificate reference when the applicant is
// in the item's register and passes its rule, refused with the reason
// otherwise.
func (s *Service) answerFromRegister(ctx context.Context, tx *sql.Tx, item *compiledItem, appID, idNumber, key string, now time.Time) error {
	if err := s.queueNode(ctx, tx, appID, joblib.NodeAccepted, joblib.ResultAccepted, "", "", now); err != nil {
		return err
	}
	if err := s.queueNode(ctx, tx, appID, joblib.NodeProcessing, "", "", "", now); err != nil {
		return err
	}
	reason, err := s.check(ctx, tx, item, idNumber, key, now)
	if err != nil {
		return err
	}
	if reason != "" {
		return s.queueNode(ctx, tx, appID, joblib.NodeDone, joblib.ResultRefused, reason, "", now)
	}
	ref := item.CertificatePrefix + "-" + appID
	return s.queueNode(ctx, tx, appID, joblib.NodeDone, joblib.ResultApproved, "经核对，申请人为本市社会救助对象", ref, now)
}

// check compares a person with the item's register and rule: "" when the
// person qualifies, else the reason.
func (s *Service) check(ctx context.Context, tx *sql.Tx, item *compiledItem, id, key string, at time.Time) (string, error) {
	var status, attrs, division string
	err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT status, attrs, division FROM portal_eligible WHERE item_code = ? AND person_key = ?`),
		item.Code, key).Scan(&status, &attrs, &division)
	if errors.Is(err, sql.ErrNoRows) {
		return "未列入" + item.Name + "资格名单", nil
	}
	if err != nil {
		return "", err
	}
	switch status {
	case statusNormal:
	case statusDeceased:
		return "已登记死亡", nil
	case statusMovedOut:
		return "户籍已迁出本市", nil
	default:
		return "待遇已暂停", nil
	}
	var env Qualification
	if err := json.Unmarshal([]byte(attrs), &env); err != nil {
		return "", fmt.Errorf("portal: register attributes: %w", err)
	}
	env.Age, env.Status, env.Division = ageOn(id, at), status, division
	ok, err := item.qualifies(env)
	if err != nil {
		return "", err
	}
	if !ok {
		return item.RefuseReason, nil
	}
	return "", nil
}

// queueNode records the application's new stage and queues the node.
func (s *Service) queueNode(ctx context.Context, tx *sql.Tx, appID, node, result, reason, cert string, at time.Time) error {
	n := joblib.Node{ApplicationID: appID, Seq: joblib.NodeSeq(node), Node: node, Result: result, Reason: reason,
		CertificateRef: cert, Dept: s.cfg.Dept, At: at.Truncate(time.Second)}
	if err := n.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	closed := 0
	if joblib.Final(node, result) {
		closed = 1
	}
	if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE portal_applications SET stage = ?, result = ?, reason = ?, certificate_ref = ?,
		closed = ?, updated_at = ? WHERE application_id = ?`), node, result, reason, cert, closed, at.UnixMilli(), appID); err != nil {
		return err
	}
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return s.enqueue(ctx, tx, kindNode, appID, n.Key(), body)
}

// Report is a status report of the bureau's business system.
type Report struct {
	// ApplicationID is the application.
	ApplicationID string
	// Node is accepted, processing or done (预审 is the hub's).
	Node string
	// Result closes the node (see joblib's Result constants).
	Result string
	// Reason explains the result.
	Reason string
	// CertificateRef is a certificate issued with an approved 办结.
	CertificateRef string
	// At is when the node was reached.
	At time.Time
}

// Advance applies a status report: it must be the application's next node
// and the application open; the node is queued for the job library.
func (s *Service) Advance(ctx context.Context, r Report) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return s.advance(ctx, tx, r) })
}

func (s *Service) advance(ctx context.Context, tx *sql.Tx, r Report) error {
	var stage string
	var closed int
	err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT stage, closed FROM portal_applications WHERE application_id = ?`), r.ApplicationID).Scan(&stage, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrUnknownApplication, r.ApplicationID)
	}
	if err != nil {
		return err
	}
	seq := joblib.NodeSeq(r.Node)
	switch {
	case closed == 1:
		return fmt.Errorf("%w: %s is closed at %s", ErrNodeOrder, r.ApplicationID, stage)
	case seq == 0:
		return fmt.Errorf("%w: node %q: want one of %s", ErrBadRecord, r.Node, strings.Join(joblib.Nodes[1:], ", "))
	case seq != joblib.NodeSeq(stage)+1:
		return fmt.Errorf("%w: %s is at %q; %s is not its next node", ErrNodeOrder, r.ApplicationID, stage, r.Node)
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	return s.queueNode(ctx, tx, r.ApplicationID, r.Node, r.Result, r.Reason, r.CertificateRef, r.At)
}

// KnownApplications counts the applications of ids the service has taken
// (the demo's business system reports nodes only for those).
func (s *Service) KnownApplications(ctx context.Context, ids []string) (int, error) {
	n := 0
	for _, id := range ids {
		var c int
		if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_applications WHERE application_id = ?`), id).Scan(&c); err != nil {
			return n, fmt.Errorf("portal: applications: %w", err)
		}
		n += c
	}
	return n, nil
}
