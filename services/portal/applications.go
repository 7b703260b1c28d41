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
	"github.com/shanghai-mca/mzhub/security/mask"
)

// maxPagesPerRound bounds one round's fetch so the other exchanges get
// their turn; the cursor carries on next round.
const maxPagesPerRound = 50

// FetchApplications takes the job library's new applications page by page
// from the stored cursor. Each page's applications, their 预审 nodes and
// the advanced cursor are committed together: a restart resumes at the
// first page not committed, and an application seen twice (a page fetched
// again, a duplicate in a page) is taken once, by its id.
func (s *Service) FetchApplications(ctx context.Context) error {
	for range maxPagesPerRound {
		cursor, err := s.mark(ctx, s.db, markApplications)
		if err != nil {
			return fmt.Errorf("portal: read cursor: %w", err)
		}
		start := s.now()
		page, err := s.d.Client.FetchApplications(ctx, cursor, s.cfg.PageSize)
		if err != nil {
			s.emit(monitor.Event{Partner: PartnerJobLib, Flow: FlowFetch, Direction: monitor.Inbound, Type: monitor.Failed,
				Status: monitor.Error, Duration: s.now().Sub(start), ErrorMessage: mask.Text(err.Error()), ErrorClass: errClass(err)})
			s.sent.WithLabelValues("application", "error").Inc()
			return err
		}
		var taken, dup int
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			taken, dup = 0, 0
			for _, r := range page.Refused {
				if err := s.refuse(ctx, tx, "applications", r.ID, int64(r.Index), r.Reason); err != nil {
					return err
				}
			}
			for i := range page.Applications {
				ok, err := s.takeApplication(ctx, tx, &page.Applications[i])
				if err != nil {
					return err
				}
				if ok {
					taken++
				} else {
					dup++
				}
			}
			return s.setMark(ctx, tx, markApplications, page.Next)
		})
		if err != nil {
			return fmt.Errorf("portal: take applications: %w", err)
		}
		for _, r := range page.Refused {
			s.emit(monitor.Event{Partner: PartnerJobLib, Flow: FlowFetch, Direction: monitor.Inbound, Type: monitor.Rejected,
				Status: monitor.Warning, ExchangeID: "application:" + r.ID, ErrorClass: "format", ErrorMessage: r.Reason})
		}
		s.sent.WithLabelValues("application", "taken").Add(float64(taken))
		s.sent.WithLabelValues("application", "duplicate").Add(float64(dup))
		s.sent.WithLabelValues("application", "refused").Add(float64(len(page.Refused)))
		if n := len(page.Applications) + len(page.Refused); n > 0 {
			st := monitor.OK
			if len(page.Refused) > 0 {
				st = monitor.Warning
			}
			s.emit(monitor.Event{Partner: PartnerJobLib, Flow: FlowFetch, Direction: monitor.Inbound, Type: monitor.Fetched, Status: st,
				ExchangeID: "applications:" + page.Next, Records: int64(taken), RecordsFailed: int64(len(page.Refused)),
				Duration: s.now().Sub(start), Attrs: map[string]string{"duplicates": fmt.Sprint(dup), "cursor": page.Next}})
		}
		if !page.More {
			return nil
		}
	}
	return nil
}

// takeApplication records a new application with its channel and queues
// its 预审; false when the hub had it already.
func (s *Service) takeApplication(ctx context.Context, tx *sql.Tx, a *joblib.Application) (bool, error) {
	item, ok := s.items[a.ItemCode]
	if !ok {
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_refused WHERE source = 'applications' AND ref = ?`), a.ApplicationID).Scan(&n); err != nil {
			return false, err
		}
		if n > 0 {
			return false, nil
		}
		return false, s.refuse(ctx, tx, "applications", a.ApplicationID, 0, fmt.Sprintf("%v: %s", ErrUnknownItem, a.ItemCode))
	}
	key, sealed, err := s.person(a.Applicant.IDNumber)
	if err != nil {
		return false, err
	}
	now := s.now()
	res, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_applications (application_id, item_code, channel, terminal_id, division,
		person_key, person_sealed, month, submitted_at, received_at, stage, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)
		ON CONFLICT (application_id) DO NOTHING`),
		a.ApplicationID, a.ItemCode, a.Channel, a.TerminalID, a.Division, key, sealed, monthOf(a.SubmittedAt), a.SubmittedAt.UnixMilli(), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	// 预审: the hub checks what it can see.
	reason, err := s.prereview(ctx, tx, a, key)
	if err != nil {
		return false, err
	}
	if reason != "" {
		return true, s.queueNode(ctx, tx, a.ApplicationID, joblib.NodePreReview, joblib.ResultReject, reason, "", now)
	}
	if err := s.queueNode(ctx, tx, a.ApplicationID, joblib.NodePreReview, joblib.ResultPass, "", "", now); err != nil {
		return false, err
	}
	if item.Answer == AnswerRegister {
		return true, s.answerFromRegister(ctx, tx, item, a, key, now)
	}
	return true, nil
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
func (s *Service) answerFromRegister(ctx context.Context, tx *sql.Tx, item *compiledItem, a *joblib.Application, key string, now time.Time) error {
	if err := s.queueNode(ctx, tx, a.ApplicationID, joblib.NodeAccepted, joblib.ResultAccepted, "", "", now); err != nil {
		return err
	}
	if err := s.queueNode(ctx, tx, a.ApplicationID, joblib.NodeProcessing, "", "", "", now); err != nil {
		return err
	}
	reason, err := s.check(ctx, tx, item, a.Applicant.IDNumber, key, now)
	if err != nil {
		return err
	}
	if reason != "" {
		return s.queueNode(ctx, tx, a.ApplicationID, joblib.NodeDone, joblib.ResultRefused, reason, "", now)
	}
	ref := item.CertificatePrefix + "-" + a.ApplicationID
	return s.queueNode(ctx, tx, a.ApplicationID, joblib.NodeDone, joblib.ResultApproved, "经核对，申请人为本市社会救助对象", ref, now)
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

// errClass names a failed call's class in the console's vocabulary.
func errClass(err error) string {
	switch {
	case joblib.NotSent(err):
		return "breaker"
	case joblib.IsRefused(err):
		return "permanent"
	case errors.Is(err, joblib.ErrMalformed):
		return "format"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transport"
}
