package verification

import (
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Quality findings. A finding in rejecting rejects the answer; the others
// are kept on the accepted answer and counted in the report.
const (
	FindingIncomplete = "incomplete" // a member asked about was not searched
	FindingFormat     = "format"     // a fact the hub cannot read or place
	FindingStale      = "stale"      // data older than max_data_age
	FindingSlow       = "slow"       // answered after slow_share of the deadline
	FindingDuplicate  = "duplicate"  // the same fact twice (kept once)
	FindingLate       = "late"       // no answer before the deadline
)

var month = regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`)

// check applies the partner rules to an answer: completeness (every
// member asked about searched), format (every fact about a member asked
// about, a known category, an amount that is not negative, a month),
// timeliness (data no older than max_data_age; slow answers flagged). It
// returns the deduplicated facts, the findings and, when the answer is
// rejected, the reason.
func (s *Service) check(c callRow, q household.Query, a household.Answer) (facts []household.Fact, findings []string, reject string) {
	asked := map[string]bool{}
	for _, m := range q.Members {
		asked[m.IDNumber] = true
	}
	covered := map[string]bool{}
	for _, id := range a.Covered {
		covered[id] = true
	}
	missing := 0
	for id := range asked {
		if !covered[id] {
			missing++
		}
	}
	if missing > 0 {
		return nil, []string{FindingIncomplete}, fmt.Sprintf("%s: %d of %d members not searched", FindingIncomplete, missing, len(asked))
	}
	for i, f := range a.Facts {
		var why string
		switch {
		case !asked[f.IDNumber]:
			why = "about a person not asked about (" + mask.IDNumber(f.IDNumber) + ")"
		case f.Kind == "":
			why = "without kind"
		case !slices.Contains([]string{household.Income, household.Evidence, household.Asset, household.Status}, f.Category):
			why = "unknown category"
		case f.AmountFen < 0:
			why = "negative amount"
		case f.Period != "" && !month.MatchString(f.Period):
			why = "period is not a month"
		}
		if why != "" {
			return nil, []string{FindingFormat}, fmt.Sprintf("%s: fact %d (%s) %s", FindingFormat, i+1, f.Kind, why)
		}
	}
	now := s.clock.Now()
	if s.cfg.MaxDataAge > 0 && (a.AsOf.IsZero() || now.Sub(a.AsOf) > s.cfg.MaxDataAge) {
		return nil, []string{FindingStale}, fmt.Sprintf("%s: data of %s, older than %s", FindingStale, a.AsOf.Format(time.DateOnly), s.cfg.MaxDataAge)
	}
	seen := map[household.Fact]bool{}
	for _, f := range a.Facts {
		if seen[f] {
			if !slices.Contains(findings, FindingDuplicate) {
				findings = append(findings, FindingDuplicate)
			}
			continue
		}
		seen[f] = true
		facts = append(facts, f)
	}
	if facts == nil {
		facts = []household.Fact{}
	}
	took := now.Sub(fromMS(c.CreatedMS))
	if limit := time.Duration(float64(s.deadlineOf(c.Partner)) * s.cfg.SlowShare); s.cfg.SlowShare > 0 && took > limit {
		findings = append(findings, FindingSlow)
	}
	return facts, findings, ""
}

// tracker keeps each partner's recent outcomes for the alert threshold.
type tracker struct {
	mu     sync.Mutex
	window int
	rings  map[string]*ring
}

type ring struct {
	bad     []bool
	next    int
	n       int
	alerted bool
}

func newTracker(window int) *tracker { return &tracker{window: window, rings: map[string]*ring{}} }

// record adds an outcome; alert is true when the partner's bad share over
// a full window passes threshold (once per crossing).
func (t *tracker) record(partner string, bad bool, threshold float64) (alert bool, ratio float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rings[partner]
	if r == nil {
		r = &ring{bad: make([]bool, t.window)}
		t.rings[partner] = r
	}
	r.bad[r.next] = bad
	r.next = (r.next + 1) % t.window
	r.n = min(r.n+1, t.window)
	nbad := 0
	for i := range r.n {
		if r.bad[i] {
			nbad++
		}
	}
	ratio = float64(nbad) / float64(r.n)
	switch {
	case r.n == t.window && ratio > threshold && !r.alerted:
		r.alerted = true
		return true, ratio
	case ratio <= threshold:
		r.alerted = false
	}
	return false, ratio
}
