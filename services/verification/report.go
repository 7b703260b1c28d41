package verification

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

// PartnerQuality is one partner's data quality over a period (the
// tender's 市内协查单位数据质量监控).
type PartnerQuality struct {
	// Partner id.
	Partner string
	// Calls made in the period.
	Calls int
	// Answered counts accepted answers; Review those awaiting review.
	Answered, Review int
	// Rejected counts answers refused by the checks or by review.
	Rejected int
	// Incomplete, Format and Stale split the rejections by check.
	Incomplete, Format, Stale int
	// Slow and Duplicate count accepted answers flagged as such.
	Slow, Duplicate int
	// Late counts calls without an answer before the deadline; Failed
	// calls refused by the partner; Open calls still running.
	Late, Failed, Open int
	// Sampled counts answers set aside for manual review; ReviewRejected
	// those the reviewer refused.
	Sampled, ReviewRejected int
	// P50 and P95 are answer times (from request to answer).
	P50, P95 time.Duration
}

// BadShare is the share of rejected and late calls among those closed.
func (q PartnerQuality) BadShare() float64 {
	closed := q.Answered + q.Rejected + q.Late + q.Failed
	if closed == 0 {
		return 0
	}
	return float64(q.Rejected+q.Late) / float64(closed)
}

// Report computes each partner's quality for calls created in [from, to).
func (s *Service) Report(ctx context.Context, from, to time.Time) ([]PartnerQuality, error) {
	d := s.deps.DB
	rows, err := d.QueryContext(ctx, d.Rebind(`SELECT partner, state, quality, reason, sampled, created_ms, answered_ms FROM verif_calls
		WHERE created_ms >= ? AND created_ms < ?`), ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("verification: report: %w", err)
	}
	defer rows.Close()
	by := map[string]*PartnerQuality{}
	times := map[string][]int64{}
	for rows.Next() {
		var partner, state, quality, reason string
		var sampled int
		var created, answered int64
		if err := rows.Scan(&partner, &state, &quality, &reason, &sampled, &created, &answered); err != nil {
			return nil, err
		}
		q := by[partner]
		if q == nil {
			q = &PartnerQuality{Partner: partner}
			by[partner] = q
		}
		q.Calls++
		fs := strings.Split(quality, ",")
		switch state {
		case StateAnswered:
			q.Answered++
		case StateReview:
			q.Review++
		case StateRejected:
			q.Rejected++
			if strings.HasPrefix(reason, "review:") {
				q.ReviewRejected++
			}
		case StateLate:
			q.Late++
		case StateFailed:
			q.Failed++
		default:
			q.Open++
		}
		if state == StateRejected {
			for _, f := range fs {
				switch f {
				case FindingIncomplete:
					q.Incomplete++
				case FindingFormat:
					q.Format++
				case FindingStale:
					q.Stale++
				}
			}
		} else {
			if slices.Contains(fs, FindingSlow) {
				q.Slow++
			}
			if slices.Contains(fs, FindingDuplicate) {
				q.Duplicate++
			}
		}
		if sampled != 0 {
			q.Sampled++
		}
		if answered > 0 && state != StateLate {
			times[partner] = append(times[partner], answered-created)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []PartnerQuality
	for p, q := range by {
		t := times[p]
		slices.Sort(t)
		if len(t) > 0 {
			q.P50 = time.Duration(t[len(t)/2]) * time.Millisecond
			q.P95 = time.Duration(t[min(len(t)-1, len(t)*95/100)]) * time.Millisecond
		}
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b PartnerQuality) int { return strings.Compare(a.Partner, b.Partner) })
	return out, nil
}

// ReportHeader is the header line of the report file.
var ReportHeader = []string{"partner", "calls", "answered", "review", "rejected", "incomplete", "format", "stale", "slow", "duplicate",
	"late", "failed", "open", "sampled", "review_rejected", "bad_share", "p50_ms", "p95_ms"}

// WriteReport writes the report for [from, to) as CSV (UTF-8) into dir,
// named quality-<from>-<to>.csv by Shanghai dates, and returns its path.
// It writes a temporary file and renames it, so a reader never sees half.
func (s *Service) WriteReport(ctx context.Context, dir string, from, to time.Time) (string, error) {
	qs, err := s.Report(ctx, from, to)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("verification: report: %w", err)
	}
	name := fmt.Sprintf("quality-%s-%s.csv", from.In(clock.Shanghai).Format("20060102T1504"), to.In(clock.Shanghai).Format("20060102T1504"))
	path := filepath.Join(dir, name)
	f, err := ownerfile.Create(path)
	if err != nil {
		return "", fmt.Errorf("verification: report: %w", err)
	}
	defer f.Abort()
	w := csv.NewWriter(f)
	_ = w.Write(ReportHeader)
	for _, q := range qs {
		_ = w.Write([]string{q.Partner, itoa(q.Calls), itoa(q.Answered), itoa(q.Review), itoa(q.Rejected), itoa(q.Incomplete), itoa(q.Format),
			itoa(q.Stale), itoa(q.Slow), itoa(q.Duplicate), itoa(q.Late), itoa(q.Failed), itoa(q.Open), itoa(q.Sampled), itoa(q.ReviewRejected),
			fmt.Sprintf("%.4f", q.BadShare()), fmt.Sprint(q.P50.Milliseconds()), fmt.Sprint(q.P95.Milliseconds())})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return "", fmt.Errorf("verification: report: %w", err)
	}
	if err := f.Commit(); err != nil {
		return "", fmt.Errorf("verification: report: %w", err)
	}
	return path, nil
}

func itoa(n int) string { return fmt.Sprint(n) }

// ReportDir is where report files go.
func (s *Service) ReportDir() string {
	if s.cfg.ReportDir != "" {
		return s.cfg.ReportDir
	}
	return filepath.Join(s.deps.DataDir, "verification", "reports")
}

func (s *Service) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(s.cfg.ReportEvery):
		}
		to := s.clock.Now()
		path, err := s.WriteReport(ctx, s.ReportDir(), to.Add(-s.cfg.ReportEvery), to)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("verification quality report failed", "err", err)
			}
			continue
		}
		s.log.Info("verification quality report written", "path", path)
	}
}
