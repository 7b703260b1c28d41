package bankaccounts

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Refusals of RetryOpening, matched with errors.Is.
var (
	// ErrNotRetryable: no failed opening under that ref.
	ErrNotRetryable = errors.New("accounts: not a failed opening")
	// ErrAlreadyRetried: the failed opening is retried already (its retry
	// is queued, sent or answered), or the person's opening at that bank
	// succeeded since.
	ErrAlreadyRetried = errors.New("accounts: failed opening retried already")
	// ErrNoCorrection: neither corrected data nor "fixed" with a note.
	ErrNoCorrection = errors.New("accounts: correct the data or mark it fixed with a note")
	// ErrBadCorrection: a corrected value that cannot be sent.
	ErrBadCorrection = errors.New("accounts: corrected data invalid")
	// ErrNoAudit: retries are refused without an audit log.
	ErrNoAudit = errors.New("accounts: no audit log: retries refused")
)

// FailedOpening is a refused opening (开户失败) as the console lists it, masked.
type FailedOpening struct {
	// Ref is the request's reference; Bank the bank's code.
	Ref, Bank string
	// IDMasked and NameMasked of the person; Division the division code sent.
	IDMasked, NameMasked, Division string
	// Outcome, Code and Reason are the bank's answer.
	Outcome, Code, Reason string
	// Failed is when the bank's result was applied.
	Failed time.Time
	// Blocking tells that the person is still left out of the lists for it
	// (the opening at that bank is still failed).
	Blocking bool
	// Retry is the ref of the request retrying it ("" none yet), RetryStatus
	// its status (queued, filed, sent, done, failed).
	Retry, RetryStatus string
}

// FailedOpenings lists the failed openings of the current cycle, newest
// first: those failed since the start of this month (Shanghai), and older
// ones that still leave their person out of the lists. Each says whether
// it was retried and how its retry stands.
func (s *Service) FailedOpenings(ctx context.Context, limit int) ([]FailedOpening, error) {
	now := s.clock.Now().In(clock.Shanghai)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, clock.Shanghai).UnixMilli()
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT r.ref, r.bank, r.id_masked, r.name_sealed, r.division, r.outcome, r.code, r.reason, r.updated_ms,
		COALESCE(st.state, ''), COALESCE(st.last_ref, ''), COALESCE(x.ref, ''), COALESCE(x.status, '')
		FROM acct_requests r
		LEFT JOIN acct_state st ON st.person = r.person AND st.bank = r.bank
		LEFT JOIN acct_requests x ON x.retry_of = r.ref
		WHERE r.op = ? AND r.status = 'failed' AND (r.updated_ms >= ? OR (st.state = 'open_failed' AND st.last_ref = r.ref))
		ORDER BY r.updated_ms DESC, r.ref LIMIT ?`), string(bank.OpOpen), month, limit)
	if err != nil {
		return nil, fmt.Errorf("accounts: failed openings: %w", err)
	}
	defer rows.Close()
	var out []FailedOpening
	for rows.Next() {
		var f FailedOpening
		var nameSealed, state, lastRef string
		var ms int64
		if err := rows.Scan(&f.Ref, &f.Bank, &f.IDMasked, &nameSealed, &f.Division, &f.Outcome, &f.Code, &f.Reason, &ms,
			&state, &lastRef, &f.Retry, &f.RetryStatus); err != nil {
			return nil, err
		}
		if name, err := s.fields.Decrypt(nameSealed); err == nil {
			f.NameMasked = mask.Name(name)
		}
		f.Failed = time.UnixMilli(ms)
		f.Blocking = state == StateOpenFailed && lastRef == f.Ref
		f.Reason = mask.Text(f.Reason)
		out = append(out, f)
	}
	return out, rows.Err()
}

// OpeningFix is an operator's correction of a failed opening: a corrected
// name or division, or Fixed (the data was right; the cause is gone, e.g.
// the bank corrected its records) with a note saying so.
type OpeningFix struct {
	Name, Division string
	Fixed          bool
	Note           string
}

// RetryOpening queues a failed opening again, with the operator's
// corrections, into the next account request file of its bank: a new
// request (its ext_id "retry:<ref>", so a double submit queues it once)
// that remembers the ref it retries. The person stays left out of the
// lists until the bank opens the account. The retry is audited under
// user's name with what was corrected (masked). It returns the new
// request's ref.
func (s *Service) RetryOpening(ctx context.Context, ref string, fix OpeningFix, user string) (string, error) {
	if s.audit == nil {
		return "", ErrNoAudit
	}
	fix.Name, fix.Division, fix.Note = strings.TrimSpace(fix.Name), strings.TrimSpace(fix.Division), strings.TrimSpace(fix.Note)
	if fix.Name == "" && fix.Division == "" && (!fix.Fixed || fix.Note == "") {
		return "", ErrNoCorrection
	}
	if len([]rune(fix.Name)) > 60 || len([]rune(fix.Note)) > 200 {
		return "", fmt.Errorf("%w: name longer than 60 or note longer than 200 characters", ErrBadCorrection)
	}
	if fix.Division != "" && (len(fix.Division) != 6 || !strings.HasPrefix(fix.Division, "3101") || strings.Trim(fix.Division, "0123456789") != "") {
		return "", fmt.Errorf("%w: division %q is not a Shanghai district code (310101…310151)", ErrBadCorrection, fix.Division)
	}
	var r struct{ bank, idSealed, nameSealed, division, state, lastRef, status, op string }
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT r.bank, r.id_sealed, r.name_sealed, r.division, r.status, r.op,
		COALESCE(st.state, ''), COALESCE(st.last_ref, '')
		FROM acct_requests r LEFT JOIN acct_state st ON st.person = r.person AND st.bank = r.bank WHERE r.ref = ?`), ref).
		Scan(&r.bank, &r.idSealed, &r.nameSealed, &r.division, &r.status, &r.op, &r.state, &r.lastRef)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (r.op != string(bank.OpOpen) || r.status != StatusFailed)) {
		return "", fmt.Errorf("%w: %s", ErrNotRetryable, ref)
	}
	if err != nil {
		return "", fmt.Errorf("accounts: retry %s: %w", ref, err)
	}
	if r.state != StateOpenFailed || r.lastRef != ref {
		return "", fmt.Errorf("%w: %s (the person's opening at %s is %s now)", ErrAlreadyRetried, ref, r.bank, r.state)
	}
	id, err := s.fields.Decrypt(r.idSealed)
	if err != nil {
		return "", fmt.Errorf("accounts: retry %s: %w", ref, err)
	}
	name, err := s.fields.Decrypt(r.nameSealed)
	if err != nil {
		return "", fmt.Errorf("accounts: retry %s: %w", ref, err)
	}
	var changed []string
	if fix.Name != "" && fix.Name != name {
		changed = append(changed, "name "+mask.Name(name)+" → "+mask.Name(fix.Name))
		name = fix.Name
	}
	if fix.Division != "" && fix.Division != r.division {
		changed = append(changed, "division "+r.division+" → "+fix.Division)
		r.division = fix.Division
	}
	if len(changed) == 0 {
		if !fix.Fixed || fix.Note == "" {
			return "", ErrNoCorrection
		}
		changed = append(changed, "marked fixed")
	}
	ext := "retry:" + ref
	n, err := s.Submit(ctx, []Request{{ExtID: ext, Bank: r.bank, Op: bank.OpOpen, PersonID: id, Name: name, Division: r.division, RetryOf: ref}})
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", fmt.Errorf("%w: %s", ErrAlreadyRetried, ref)
	}
	var newRef string
	if err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT ref FROM acct_requests WHERE ext_id = ?`), ext).Scan(&newRef); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("开户失败 retried as %s at %s for %s: %s", newRef, r.bank, mask.IDNumber(id), strings.Join(changed, "; "))
	if fix.Note != "" {
		detail += "; note: " + mask.Text(fix.Note)
	}
	if _, err := s.audit.Append(ctx, audit.Record{Time: s.clock.Now(), Actor: audit.UserActor(user), Action: "accounts.retry_opening",
		Object: ref, Outcome: audit.OutcomeSuccess, Detail: detail}); err != nil {
		return "", fmt.Errorf("accounts: retry %s queued as %s, but its audit record failed: %w", ref, newRef, err)
	}
	s.log.Info("accounts: failed opening retried", "ref", ref, "retry", newRef, "bank", r.bank)
	return newRef, nil
}
