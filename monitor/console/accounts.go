package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AccountFailures are the failed account openings (开户失败) of the current
// allowance cycle, which operators correct (or mark fixed) and retry from
// the console; the hub adapts services/bankaccounts. The implementation
// audits every retry under user's name, and refuses one with an error
// wrapping one of the sentinels below so that the console can say why.
type AccountFailures interface {
	// FailedOpenings lists the failed openings of the current cycle, newest first.
	FailedOpenings(ctx context.Context, limit int) ([]FailedOpening, error)
	// RetryOpening queues the opening ref again, corrected by fix, into
	// the next account request file of its bank; it returns the new
	// request's reference.
	RetryOpening(ctx context.Context, ref string, fix OpeningFix, user string) (string, error)
}

// Refusals of AccountFailures.RetryOpening.
var (
	// ErrNotRetryable: no failed opening under that reference.
	ErrNotRetryable = errors.New("not a failed opening")
	// ErrAlreadyRetried: retried already, or opened since.
	ErrAlreadyRetried = errors.New("retried already")
	// ErrNoCorrection: neither a correction nor "fixed" with a note.
	ErrNoCorrection = errors.New("nothing corrected")
	// ErrBadCorrection: a corrected value that cannot be sent.
	ErrBadCorrection = errors.New("correction invalid")
)

// FailedOpening is one failed opening as the page lists it (masked).
type FailedOpening struct {
	// Ref is the request's reference; Bank the bank's code (boc, …).
	Ref, Bank string
	// IDMasked and NameMasked of the person; Division the division code sent.
	IDMasked, NameMasked, Division string
	// Outcome is the hub's class of the bank's answer (mismatch, id_invalid,
	// …); Code and Reason the bank's own.
	Outcome, Code, Reason string
	// Failed is when the bank's result was applied.
	Failed time.Time
	// Blocking: the person is left out of the lists for it.
	Blocking bool
	// Retry is the reference of the retry ("" none), RetryStatus its status.
	Retry, RetryStatus string
}

// OpeningFix is an operator's correction: a name or division, or Fixed
// with a note (the data was right; the cause is gone).
type OpeningFix struct {
	Name, Division string
	Fixed          bool
	Note           string
}

// accountFailuresLimit is how many failed openings the page lists.
const accountFailuresLimit = 500

type accountsData struct {
	Rows   []FailedOpening
	CanAct bool
	// AskUser: no login configured, the form asks the operator's name.
	AskUser bool
	// Problem is the message key of a refused retry; Target its reference.
	Problem, Target string
}

// accountFailures is the page of failed openings (GET /accounts).
func (c *Console) accountFailures(w http.ResponseWriter, r *http.Request) {
	c.accountsPage(w, r, "", "", http.StatusOK)
}

func (c *Console) accountsPage(w http.ResponseWriter, r *http.Request, problem, target string, status int) {
	if c.d.Accounts == nil {
		c.notFound(w, r)
		return
	}
	p := c.newPage(w, r, "nav_accounts")
	rows, err := c.d.Accounts.FailedOpenings(r.Context(), accountFailuresLimit)
	if err != nil {
		c.fail(w, "account failures", err)
		return
	}
	for i := range rows {
		rows[i].Reason = mask(rows[i].Reason)
	}
	p.Data = accountsData{Rows: rows, CanAct: c.canAct(r), AskUser: c.d.User == nil, Problem: problem, Target: target}
	c.renderStatus(w, p, "accounts", status)
}

// accountRetry retries one failed opening (POST /accounts/{ref}/retry:
// name, division, fixed, note).
func (c *Console) accountRetry(w http.ResponseWriter, r *http.Request) {
	if c.d.Accounts == nil {
		c.notFound(w, r)
		return
	}
	ref := r.PathValue("ref")
	if !c.canAct(r) {
		c.refuse(w, r, "accounts.retry_opening", ref)
		return
	}
	if c.d.Auditor == nil {
		http.Error(w, "actions need an audit log", http.StatusForbidden)
		return
	}
	p := c.newPage(w, r, "nav_accounts")
	user, ok := c.actor(r)
	if !ok {
		http.Redirect(w, r, p.Base+"accounts?flash="+url.QueryEscape(p.T("operator_required")), http.StatusSeeOther)
		return
	}
	fix := OpeningFix{Name: strings.TrimSpace(r.FormValue("name")), Division: strings.TrimSpace(r.FormValue("division")),
		Fixed: r.FormValue("fixed") == "1", Note: strings.TrimSpace(r.FormValue("note"))}
	retry, err := c.d.Accounts.RetryOpening(r.Context(), ref, fix, user)
	if err != nil {
		for _, x := range []struct {
			err    error
			key    string
			status int
		}{
			{ErrNotRetryable, "acct_err_not_retryable", http.StatusNotFound},
			{ErrAlreadyRetried, "acct_err_retried", http.StatusConflict},
			{ErrNoCorrection, "acct_err_no_correction", http.StatusUnprocessableEntity},
			{ErrBadCorrection, "acct_err_bad_correction", http.StatusUnprocessableEntity},
		} {
			if errors.Is(err, x.err) {
				c.accountsPage(w, r, x.key, ref, x.status)
				return
			}
		}
		c.fail(w, "account retry", err)
		return
	}
	http.Redirect(w, r, p.Base+"accounts?flash="+url.QueryEscape(p.T("acct_retried")+" "+retry), http.StatusSeeOther)
}
