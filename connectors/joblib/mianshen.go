package joblib

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// EligiblePerson is one person the bureau pushes as newly eligible for a
// 免申即享 item.
type EligiblePerson struct {
	// PersonRef is the bureau's reference of the person for this item (no ID
	// number): the portal quotes it back on the case.
	PersonRef string `json:"person_ref"`
	// IDNumber is the resident ID number, which the portal needs to notify
	// the person through their 随申办 account.
	IDNumber string `json:"id_number"`
	// Name is the person's name.
	Name string `json:"name"`
	// Division is the district's division code.
	Division string `json:"division"`
}

// Push is one batch of newly eligible persons of an item and month.
type Push struct {
	// BatchID is the bureau's id of the batch; the portal takes a batch once
	// (idempotent by batch id).
	BatchID string `json:"batch_id"`
	// Dept is the bureau's department code.
	Dept string `json:"dept"`
	// ItemCode is the item.
	ItemCode string `json:"item_code"`
	// Month is the month the persons became eligible (YYYY-MM).
	Month string `json:"month"`
	// Persons are the batch's persons (at most 1,000).
	Persons []EligiblePerson `json:"persons"`
}

// MaxPushPersons bounds a push batch.
const MaxPushPersons = 1000

// PushAck is the portal's answer to a push (and to its query).
type PushAck struct {
	// BatchID is the batch.
	BatchID string `json:"batch_id"`
	// Accepted counts the persons the portal took.
	Accepted int `json:"accepted"`
	// Duplicates counts persons the portal had from an earlier batch.
	Duplicates int `json:"duplicates"`
}

// ParsePushAck decodes a push answer and checks it is for batchID and
// counts no more persons than were sent.
func ParsePushAck(body []byte, batchID string, sent int) (PushAck, error) {
	var a PushAck
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case a.BatchID != batchID:
		return a, fmt.Errorf("%w: answer for batch %q, sent %s", ErrMalformed, clip(a.BatchID), batchID)
	case a.Accepted < 0 || a.Duplicates < 0 || a.Accepted+a.Duplicates != sent:
		return a, fmt.Errorf("%w: batch %s: %d accepted and %d duplicates for %d persons sent", ErrMalformed, batchID, a.Accepted, a.Duplicates, sent)
	}
	return a, nil
}

// Case is a 免申即享 case the portal hands back for the department's
// confirmation (部门确认): the person was notified and agreed.
type Case struct {
	// CaseID is the portal's case number.
	CaseID string `json:"case_id"`
	// ItemCode is the item.
	ItemCode string `json:"item_code"`
	// PersonRef is the bureau's reference from the push (empty when the
	// person came to the case another way, e.g. by searching the item).
	PersonRef string `json:"person_ref,omitempty"`
	// IDNumber is the person's resident ID number.
	IDNumber string `json:"id_number"`
	// Name is the person's name.
	Name string `json:"name"`
	// Division is the district's division code.
	Division string `json:"division"`
	// Month is the push month the case belongs to.
	Month string `json:"month"`
	// ConsentedAt is when the person agreed.
	ConsentedAt time.Time `json:"consented_at"`
}

// Validate reports the first rule the case breaks (wrapping ErrInvalid).
func (c *Case) Validate() error {
	switch {
	case !refRE.MatchString(c.CaseID):
		return fmt.Errorf("%w: case_id %q", ErrInvalid, clip(c.CaseID))
	case !codeRE.MatchString(c.ItemCode):
		return fmt.Errorf("%w: item_code %q is not an item code", ErrInvalid, clip(c.ItemCode))
	case c.PersonRef != "" && !refRE.MatchString(c.PersonRef):
		return fmt.Errorf("%w: person_ref %q", ErrInvalid, clip(c.PersonRef))
	case !mask.ValidID(c.IDNumber):
		return fmt.Errorf("%w: id_number %s is not a valid resident ID number", ErrInvalid, mask.IDNumber(c.IDNumber))
	case !validName(c.Name):
		return fmt.Errorf("%w: name: want 1-32 characters", ErrInvalid)
	case !divisionRE.MatchString(c.Division):
		return fmt.Errorf("%w: division %q is not a Shanghai district code", ErrInvalid, clip(c.Division))
	case !monthRE.MatchString(c.Month):
		return fmt.Errorf("%w: month %q: want YYYY-MM", ErrInvalid, clip(c.Month))
	case c.ConsentedAt.IsZero():
		return fmt.Errorf("%w: consented_at is missing", ErrInvalid)
	}
	return nil
}

// CasePage is one page of cases handed back.
type CasePage struct {
	// Cases are the valid cases, in order.
	Cases []Case
	// Refused are the items that failed the rules.
	Refused []Refused
	// Next is the cursor to ask from next.
	Next string
	// More says whether more cases wait.
	More bool
}

// ParseCasePage decodes a page of GET /mianshen/v1/cases like
// ParseApplicationPage.
func ParseCasePage(body []byte) (CasePage, error) {
	items, next, more, err := decodePage(body, "cases")
	if err != nil {
		return CasePage{}, err
	}
	p := CasePage{Next: next, More: more}
	for i, raw := range items {
		var c Case
		if err := strictUnmarshal(raw, &c); err != nil {
			p.Refused = append(p.Refused, Refused{Index: i, ID: idOf(raw, "case_id"), Reason: fmt.Sprintf("%v: %s", ErrMalformed, mask.Text(err.Error()))})
			continue
		}
		if err := c.Validate(); err != nil {
			p.Refused = append(p.Refused, Refused{Index: i, ID: idOf(raw, "case_id"), Reason: err.Error()})
			continue
		}
		p.Cases = append(p.Cases, c)
	}
	return p, nil
}

// Decisions of a confirmation.
const (
	DecisionConfirm = "confirm"
	DecisionRefuse  = "refuse"
)

// Confirmation is the department's answer on a case (部门确认).
type Confirmation struct {
	// CaseID is the case.
	CaseID string `json:"case_id"`
	// Decision is confirm or refuse.
	Decision string `json:"decision"`
	// Reason says why (required to refuse).
	Reason string `json:"reason,omitempty"`
	// Auto is true when the hub approved by the item's rules without a person.
	Auto bool `json:"auto"`
	// Dept is the department's code.
	Dept string `json:"dept"`
	// At is when the bureau decided.
	At time.Time `json:"at"`
}

// Validate reports the first rule the confirmation breaks.
func (c *Confirmation) Validate() error {
	switch {
	case !refRE.MatchString(c.CaseID):
		return fmt.Errorf("%w: case_id %q", ErrInvalid, clip(c.CaseID))
	case c.Decision != DecisionConfirm && c.Decision != DecisionRefuse:
		return fmt.Errorf("%w: decision %q: want confirm or refuse", ErrInvalid, clip(c.Decision))
	case c.Decision == DecisionRefuse && strings.TrimSpace(c.Reason) == "":
		return fmt.Errorf("%w: a refusal needs a reason", ErrInvalid)
	case utf8.RuneCountInString(c.Reason) > 200 || !utf8.ValidString(c.Reason):
		return fmt.Errorf("%w: reason: at most 200 characters", ErrInvalid)
	case c.Dept == "" || c.At.IsZero():
		return fmt.Errorf("%w: dept and at are required", ErrInvalid)
	}
	return nil
}

// Payout reports that a confirmed case's benefit was actually paid (兑付).
type Payout struct {
	// PayoutID is the bureau's id of the payout (one per case and month).
	PayoutID string `json:"payout_id"`
	// CaseID is the confirmed case.
	CaseID string `json:"case_id"`
	// Month is the month paid (YYYY-MM).
	Month string `json:"month"`
	// AmountFen is the amount paid, in fen.
	AmountFen int64 `json:"amount_fen"`
	// PaidAt is when the bank's return confirmed the payment.
	PaidAt time.Time `json:"paid_at"`
	// Dept is the department's code.
	Dept string `json:"dept"`
}

// Validate reports the first rule the payout breaks.
func (p *Payout) Validate() error {
	switch {
	case !refRE.MatchString(p.PayoutID) || !refRE.MatchString(p.CaseID):
		return fmt.Errorf("%w: payout_id and case_id are required ids", ErrInvalid)
	case !monthRE.MatchString(p.Month):
		return fmt.Errorf("%w: month %q: want YYYY-MM", ErrInvalid, clip(p.Month))
	case p.AmountFen <= 0:
		return fmt.Errorf("%w: amount_fen %d must be positive", ErrInvalid, p.AmountFen)
	case p.Dept == "" || p.PaidAt.IsZero():
		return fmt.Errorf("%w: dept and paid_at are required", ErrInvalid)
	}
	return nil
}

// CaseStatus is what the portal holds of a case: its confirmation and the
// payouts it took.
type CaseStatus struct {
	// CaseID is the case.
	CaseID string `json:"case_id"`
	// Known is false when the portal does not know the case.
	Known bool `json:"known"`
	// Decision is the confirmation taken ("" when none).
	Decision string `json:"decision"`
	// PayoutIDs are the payouts taken.
	PayoutIDs []string `json:"payout_ids"`
}

// ParseCaseStatus decodes the answer of POST /mianshen/v1/cases/query and
// checks it answers each case asked about.
func ParseCaseStatus(body []byte, asked []string) (map[string]CaseStatus, error) {
	var r struct {
		Cases []CaseStatus `json:"cases"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	want := make(map[string]bool, len(asked))
	for _, id := range asked {
		want[id] = true
	}
	out := make(map[string]CaseStatus, len(asked))
	for _, s := range r.Cases {
		if !want[s.CaseID] {
			return nil, fmt.Errorf("%w: status of %q, which was not asked about", ErrMalformed, clip(s.CaseID))
		}
		if s.Decision != "" && s.Decision != DecisionConfirm && s.Decision != DecisionRefuse {
			return nil, fmt.Errorf("%w: %s: decision %q", ErrMalformed, s.CaseID, clip(s.Decision))
		}
		out[s.CaseID] = s
	}
	if len(out) != len(want) {
		return nil, fmt.Errorf("%w: status of %d cases for %d asked", ErrMalformed, len(out), len(want))
	}
	return out, nil
}
