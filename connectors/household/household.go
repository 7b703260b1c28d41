package household

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Member is one person of a household.
type Member struct {
	// Name is the member's name.
	Name string `json:"name"`
	// IDNumber is the resident ID number (GB 11643, 18 characters).
	IDNumber string `json:"id_number"`
	// Relation to the applicant: self, spouse, child, parent, other.
	Relation string `json:"relation,omitempty"`
}

// Query is one question to one partner about a household.
type Query struct {
	// Key is the idempotency key of the call (request id, partner and
	// scope): the partner keeps its answer under it, so asking twice with
	// the same key never runs the check twice, and Lookup finds it.
	Key string `json:"key"`
	// RequestID is the verification request.
	RequestID string `json:"request_id"`
	// Scope narrows the call (the province asked through the ministry);
	// empty for in-city partners.
	Scope string `json:"scope,omitempty"`
	// Authorization is the household's authorisation reference (个人电子授权).
	Authorization string `json:"authorization"`
	// Members are the persons asked about.
	Members []Member `json:"members"`
	// PartnerRef is the partner's reference from an earlier accepted call
	// (asynchronous partners).
	PartnerRef string `json:"partner_ref,omitempty"`
}

// Categories of facts.
const (
	// Income is a monthly income that adds up (pension, nursing fee).
	Income = "income"
	// Evidence is monthly income evidence of employment: several sources
	// (social security wage base, housing fund contributions, loans)
	// evidence the same wage, so the household takes the largest, not
	// their sum.
	Evidence = "evidence"
	// Asset is a balance or holding (deposits, registered capital held).
	Asset = "asset"
	// Status is a fact without an amount (registered company, abnormal list).
	Status = "status"
)

// Fact is one normalised item of a partner's answer.
type Fact struct {
	// IDNumber is the member the fact is about.
	IDNumber string `json:"id_number"`
	// Kind names the fact (e.g. "wage", "pension", "deposit").
	Kind string `json:"kind"`
	// Category is Income, Evidence, Asset or Status.
	Category string `json:"category"`
	// AmountFen is the amount in fen (monthly for Income and Evidence).
	AmountFen int64 `json:"amount_fen"`
	// Source names where it comes from (employer, bank, company).
	Source string `json:"source,omitempty"`
	// Period is the month the fact is for (YYYY-MM), when it has one.
	Period string `json:"period,omitempty"`
	// Link is an external link to documents kept at the partner.
	Link string `json:"link,omitempty"`
}

// Answer is a partner's answer to a Query.
type Answer struct {
	// PartnerRef is the partner's own reference of the call.
	PartnerRef string `json:"partner_ref,omitempty"`
	// Pending means the partner accepted the query and answers later
	// (ask again with Lookup).
	Pending bool `json:"pending,omitempty"`
	// AsOf is the date of the partner's data (timeliness check).
	AsOf time.Time `json:"as_of"`
	// Covered lists the ID numbers the partner searched (completeness
	// check): a member the partner has nothing about is covered without facts.
	Covered []string `json:"covered"`
	// Facts are the normalised findings.
	Facts []Fact `json:"facts"`
}

// ErrBadAmount is an amount that is not yuan with at most two decimals.
var ErrBadAmount = errors.New("not an amount in yuan")

// ParseYuan parses an amount in yuan ("1234.5", "-3.20", "0") into fen,
// exactly (no floats). At most two decimals; no exponent, no grouping.
func ParseYuan(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 15 || (dot && (len(frac) == 0 || len(frac) > 2)) {
		return 0, fmt.Errorf("%w: %q", ErrBadAmount, s)
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrBadAmount, s)
		}
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadAmount, s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	v := w*100 + f
	if neg {
		v = -v
	}
	return v, nil
}

// FormatYuan formats fen as yuan with two decimals.
func FormatYuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// ErrBadMonth is a period that is not YYYY-MM (or YYYYMM).
var ErrBadMonth = errors.New("not a month")

// ParseMonth normalises "2026-10" or "202610" to "2026-10".
func ParseMonth(s string) (string, error) {
	s = strings.TrimSpace(s)
	layout := "2006-01"
	if len(s) == 6 {
		layout = "200601"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadMonth, s)
	}
	return t.Format("2006-01"), nil
}

// Province returns the two-digit province code of an ID number ("31" is
// Shanghai), or "" when the number is too short.
func Province(idNumber string) string {
	if len(idNumber) < 2 {
		return ""
	}
	return idNumber[:2]
}

// Local reports whether an ID number was issued in Shanghai.
func Local(idNumber string) bool { return Province(idNumber) == "31" }

// ErrBadAnswer marks an answer that could not be read (malformed document,
// bad amount or month): the call is not retried, the answer is rejected
// with the reason and never reaches the aggregate.
var ErrBadAnswer = errors.New("bad answer")

// ErrNotFound is a Lookup of a key the partner does not know.
var ErrNotFound = errors.New("not found at the partner")
