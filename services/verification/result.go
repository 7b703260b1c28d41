package verification

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Result is a request's aggregate: partial while calls are open, final
// once each answered, was rejected, failed or passed its deadline.
type Result struct {
	// ID is the request id.
	ID string `json:"id"`
	// Reference is the caller's case number.
	Reference string `json:"reference"`
	// Household is the household number.
	Household string `json:"household"`
	// Origin is the asking province for requests from other provinces.
	Origin string `json:"origin,omitempty"`
	// Status is partial or final.
	Status string `json:"status"`
	// Complete is true when final and every partner's answer was accepted.
	Complete bool `json:"complete"`
	// CreatedAt is when the request was stored.
	CreatedAt time.Time `json:"created_at"`
	// FinalAt is when it became final.
	FinalAt time.Time `json:"final_at,omitzero"`
	// MonthlyIncomeFen is the household's monthly income: per member the
	// sum of incomes plus the largest employment evidence.
	MonthlyIncomeFen int64 `json:"monthly_income_fen"`
	// AssetsFen is the household's deposits and holdings.
	AssetsFen int64 `json:"assets_fen"`
	// Members are the per-member aggregates.
	Members []MemberResult `json:"members"`
	// Partners are the calls and their states.
	Partners []PartnerResult `json:"partners"`
}

// MemberResult is one member's aggregate. The ID number is masked.
type MemberResult struct {
	// IDNumber is masked (310***********1234).
	IDNumber string `json:"id_number"`
	// Name of the member.
	Name string `json:"name"`
	// Relation to the applicant.
	Relation string `json:"relation,omitempty"`
	// MonthlyIncomeFen is the member's incomes plus the largest evidence.
	MonthlyIncomeFen int64 `json:"monthly_income_fen"`
	// EvidenceFen is the largest employment evidence (wage base,
	// housing-fund wage, loan-implied income).
	EvidenceFen int64 `json:"evidence_fen"`
	// AssetsFen is the sum of deposits and holdings.
	AssetsFen int64 `json:"assets_fen"`
	// Facts are the accepted findings about the member.
	Facts []FactResult `json:"facts"`
}

// FactResult is one accepted fact with its partner.
type FactResult struct {
	// Partner that answered it.
	Partner string `json:"partner"`
	// Kind, Category, AmountFen, Source, Period and Link as in household.Fact.
	Kind      string `json:"kind"`
	Category  string `json:"category"`
	AmountFen int64  `json:"amount_fen"`
	Source    string `json:"source,omitempty"`
	Period    string `json:"period,omitempty"`
	Link      string `json:"link,omitempty"`
}

// PartnerResult is one call.
type PartnerResult struct {
	// CallID identifies the call (reviews).
	CallID int64 `json:"call_id"`
	// Partner id.
	Partner string `json:"partner"`
	// Scope is the province asked through the ministry.
	Scope string `json:"scope,omitempty"`
	// State of the call.
	State string `json:"state"`
	// Quality findings.
	Quality []string `json:"quality,omitempty"`
	// Reason of a rejection, failure or of the last retry.
	Reason string `json:"reason,omitempty"`
	// PartnerRef is the partner's reference.
	PartnerRef string `json:"partner_ref,omitempty"`
	// AnsweredAt is when the answer came.
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	// Asks and Lookups count the calls made.
	Asks    int `json:"asks"`
	Lookups int `json:"lookups"`
}

// Result aggregates the request id from what is stored.
func (s *Service) Result(ctx context.Context, id string) (Result, error) {
	r, row, err := s.loadRequest(ctx, id)
	if err != nil {
		return Result{}, err
	}
	calls, err := s.calls(ctx, id)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: row.ID, Reference: row.Reference, Household: row.Household, Origin: row.Origin, Status: "partial",
		CreatedAt: fromMS(row.CreatedMS), FinalAt: fromMS(row.FinalMS), Members: []MemberResult{}, Partners: []PartnerResult{}}
	if row.Status == "final" {
		res.Status = "final"
	}
	idx := map[string]int{}
	for i, m := range r.Members {
		idx[m.IDNumber] = i
		res.Members = append(res.Members, MemberResult{IDNumber: mask.IDNumber(m.IDNumber), Name: m.Name, Relation: m.Relation, Facts: []FactResult{}})
	}
	allAnswered := true
	for _, c := range calls {
		pr := PartnerResult{CallID: c.ID, Partner: c.Partner, Scope: c.Scope, State: c.State, Reason: c.Reason, PartnerRef: c.PartnerRef,
			AnsweredAt: fromMS(c.AnsweredMS), Asks: c.Asks, Lookups: c.Lookups}
		if c.Quality != "" {
			pr.Quality = strings.Split(c.Quality, ",")
		}
		res.Partners = append(res.Partners, pr)
		if c.State != StateAnswered {
			allAnswered = false
			continue
		}
		a, err := s.answerOf(c)
		if err != nil {
			return Result{}, err
		}
		for _, f := range a.Facts {
			i, ok := idx[f.IDNumber]
			if !ok {
				continue // checked on arrival; a request edited since cannot happen
			}
			m := &res.Members[i]
			m.Facts = append(m.Facts, FactResult{Partner: c.Partner, Kind: f.Kind, Category: f.Category, AmountFen: f.AmountFen, Source: f.Source, Period: f.Period, Link: f.Link})
			switch f.Category {
			case household.Income:
				m.MonthlyIncomeFen += f.AmountFen
			case household.Evidence:
				m.EvidenceFen = max(m.EvidenceFen, f.AmountFen)
			case household.Asset:
				m.AssetsFen += f.AmountFen
			}
		}
	}
	for i := range res.Members {
		m := &res.Members[i]
		m.MonthlyIncomeFen += m.EvidenceFen
		res.MonthlyIncomeFen += m.MonthlyIncomeFen
		res.AssetsFen += m.AssetsFen
	}
	res.Complete = res.Status == "final" && allAnswered
	return res, nil
}

func (s *Service) answerOf(c callRow) (storedAnswer, error) {
	var a storedAnswer
	if len(c.Answer) == 0 {
		return a, nil
	}
	plain, err := s.open(c.Answer)
	if err != nil {
		return a, fmt.Errorf("verification: open answer %s: %w", c.Key, err)
	}
	if err := json.Unmarshal(plain, &a); err != nil {
		return a, fmt.Errorf("verification: answer %s: %w", c.Key, err)
	}
	return a, nil
}

func (s *Service) calls(ctx context.Context, requestID string) ([]callRow, error) {
	db := s.deps.DB
	rows, err := db.QueryContext(ctx, db.Rebind(`SELECT `+callCols+` FROM verif_calls WHERE request_id = ? ORDER BY id`), requestID)
	if err != nil {
		return nil, fmt.Errorf("verification: calls of %s: %w", requestID, err)
	}
	defer rows.Close()
	var out []callRow
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ReviewItem is an answer awaiting manual review.
type ReviewItem struct {
	// CallID identifies the call.
	CallID int64
	// RequestID is its request.
	RequestID string
	// Partner that answered.
	Partner string
	// AnsweredAt is when.
	AnsweredAt time.Time
	// Quality findings.
	Quality string
	// Facts answered, with ID numbers masked.
	Facts []household.Fact
}

// Reviews lists up to limit answers awaiting review, oldest first.
func (s *Service) Reviews(ctx context.Context, limit int) ([]ReviewItem, error) {
	db := s.deps.DB
	rows, err := db.QueryContext(ctx, db.Rebind(`SELECT `+callCols+` FROM verif_calls WHERE state = 'review' ORDER BY answered_ms LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("verification: reviews: %w", err)
	}
	var calls []callRow
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		calls = append(calls, c)
	}
	rows.Close()
	var out []ReviewItem
	for _, c := range calls {
		a, err := s.answerOf(c)
		if err != nil {
			return nil, err
		}
		for i := range a.Facts {
			a.Facts[i].IDNumber = mask.IDNumber(a.Facts[i].IDNumber)
		}
		out = append(out, ReviewItem{CallID: c.ID, RequestID: c.RequestID, Partner: c.Partner, AnsweredAt: fromMS(c.AnsweredMS), Quality: c.Quality, Facts: a.Facts})
	}
	return out, nil
}

// Review accepts or rejects a sampled answer (抽检). A rejected answer
// never reaches the aggregate; either way the request may become final.
func (s *Service) Review(ctx context.Context, callID int64, user string, accept bool, note string) error {
	db := s.deps.DB
	c, err := scanCall(db.QueryRowContext(ctx, db.Rebind(`SELECT `+callCols+` FROM verif_calls WHERE id = ?`), callID))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: call %d", ErrNotFound, callID)
	}
	if err != nil {
		return fmt.Errorf("verification: review %d: %w", callID, err)
	}
	if c.State != StateReview {
		return fmt.Errorf("%w: call %d is %s", ErrNotUnderReview, callID, c.State)
	}
	to, reason := StateAnswered, ""
	if !accept {
		to, reason = StateRejected, "review: "+mask.Text(note)
	}
	if !s.mark(ctx, c, StateReview, `state = ?, reason = ?, reviewer = ?, reviewed_ms = ?`, to, reason, user, ms(s.clock.Now())) {
		return fmt.Errorf("%w: call %d changed meanwhile", ErrNotUnderReview, callID)
	}
	status := monitor.OK
	if !accept {
		status = monitor.Error
		s.quality.record(c.Partner, true, s.cfg.AlertRatio)
	}
	s.metrics.outcomes.WithLabelValues(c.Partner, "reviewed_"+to).Inc()
	s.emit(monitor.Event{Type: monitor.Validated, Status: status, Partner: c.Partner, Flow: callFlow(c.Partner, ""), Direction: monitor.Internal,
		ExchangeID: c.Key, BusinessKey: c.RequestID, Stage: "review", ErrorMessage: reason, Attrs: map[string]string{"user": user, "accepted": fmt.Sprint(accept)}})
	if err := s.finalize(ctx, c.RequestID); err != nil {
		return fmt.Errorf("verification: review %d: %w", callID, err)
	}
	s.signal()
	return nil
}
