package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

// allFlows names the rollup row that sums every partner flow of an hour.
const allFlows = "*"

// histBuckets is the number of duration buckets of monitor_hourly.
const histBuckets = 36

// bucketBound is the upper bound of bucket k in microseconds (1.5^k ms).
func bucketBound(k int) float64 { return 1000 * math.Pow(1.5, float64(k)) }

// bucketOf returns the histogram bucket of a positive duration.
func bucketOf(us int64) int {
	if us <= 1000 {
		return 0
	}
	k := int(math.Ceil(math.Log(float64(us)/1000) / math.Log(1.5)))
	return min(k, histBuckets-1)
}

type hourAgg struct {
	events, errors, bytes                int64
	records, recordsFailed, formatErrors int64
	hist                                 [histBuckets]int64
	slow                                 [len(slowUS)]int64
}

// slowUS are monitor.SlowBounds in microseconds (columns s00..s11; a test
// keeps them equal).
var slowUS = [12]int64{1e6, 2e6, 5e6, 10e6, 15e6, 30e6, 60e6, 120e6, 300e6, 600e6, 1800e6, 3600e6}

// isFormatError is the format-error test of Aggregate.
func isFormatError(ev *monitor.Event) bool {
	return ((ev.Type == monitor.Validated || ev.Type == monitor.Rejected) && ev.Status == monitor.Error) || ev.ErrorClass == "format"
}

// dailyUpsert adds to the daily rollup (no duration histogram).
var dailyUpsert = func() string {
	names := []string{"events", "errors", "bytes", "records", "records_failed", "format_errors"}
	for k := range slowUS {
		names = append(names, fmt.Sprintf("s%02d", k))
	}
	var ph, set []string
	for _, c := range names {
		ph = append(ph, "?")
		set = append(set, c+" = "+c+" + excluded."+c)
	}
	return `INSERT INTO monitor_daily (day_ms, partner, flow, ` + strings.Join(names, ", ") + `) VALUES (?, ?, ?, ` +
		strings.Join(ph, ", ") + `) ON CONFLICT (day_ms, partner, flow) DO UPDATE SET ` + strings.Join(set, ", ")
}()

const dayMS = 24 * 3600000

var hourlyUpsert = func() string {
	var cols, ph, set []string
	names := []string{"records", "records_failed", "format_errors"}
	for k := range histBuckets {
		names = append(names, fmt.Sprintf("h%02d", k))
	}
	for k := range slowUS {
		names = append(names, fmt.Sprintf("s%02d", k))
	}
	for _, c := range names {
		cols = append(cols, c)
		ph = append(ph, "?")
		set = append(set, c+" = "+c+" + excluded."+c)
	}
	return `INSERT INTO monitor_hourly (hour_ms, partner, flow, events, errors, bytes, ` + strings.Join(cols, ", ") +
		`) VALUES (?, ?, ?, ?, ?, ?, ` + strings.Join(ph, ", ") + `) ON CONFLICT (hour_ms, partner, flow) DO UPDATE SET
		events = events + excluded.events, errors = errors + excluded.errors, bytes = bytes + excluded.bytes, ` + strings.Join(set, ", ")
}()

// hourly adds a batch to the hourly rollup.
func hourly(ctx context.Context, tx *sql.Tx, c *store.Stmts, evs []monitor.Event) error {
	type key struct {
		hour          int64
		partner, flow string
	}
	aggs := map[key]*hourAgg{}
	for i := range evs {
		ev := &evs[i]
		ms := ev.Time.UnixMilli()
		hour := ms - ((ms%3600000)+3600000)%3600000
		// Each event counts for its partner flow and for the all-flows row.
		for _, k := range []key{{hour, ev.Partner, ev.Flow}, {hour, allFlows, allFlows}} {
			a := aggs[k]
			if a == nil {
				a = &hourAgg{}
				aggs[k] = a
			}
			a.events++
			if ev.Status == monitor.Error {
				a.errors++
			}
			a.bytes += ev.Bytes
			a.records += ev.Records
			a.recordsFailed += ev.RecordsFailed
			if isFormatError(ev) {
				a.formatErrors++
			}
			if us := ev.Duration.Microseconds(); us > 0 {
				a.hist[bucketOf(us)]++
				for j, b := range slowUS {
					if us > b {
						a.slow[j]++
					}
				}
			}
		}
	}
	for k, a := range aggs {
		args := make([]any, 0, 9+histBuckets+len(slowUS))
		args = append(args, k.hour, k.partner, k.flow, a.events, a.errors, a.bytes, a.records, a.recordsFailed, a.formatErrors)
		for _, h := range a.hist {
			args = append(args, h)
		}
		for _, n := range a.slow {
			args = append(args, n)
		}
		if _, err := c.Exec(ctx, tx, hourlyUpsert, args...); err != nil {
			return fmt.Errorf("update hourly rollup: %w", err)
		}
	}
	// The daily rollup sums the hours of the batch per day.
	days := map[key]*hourAgg{}
	for k, a := range aggs {
		if k.partner == allFlows {
			continue
		}
		dk := key{k.hour - ((k.hour%dayMS)+dayMS)%dayMS, k.partner, k.flow}
		d := days[dk]
		if d == nil {
			d = &hourAgg{}
			days[dk] = d
		}
		d.events += a.events
		d.errors += a.errors
		d.bytes += a.bytes
		d.records += a.records
		d.recordsFailed += a.recordsFailed
		d.formatErrors += a.formatErrors
		for j := range d.slow {
			d.slow[j] += a.slow[j]
		}
	}
	for k, d := range days {
		args := make([]any, 0, 9+len(slowUS))
		args = append(args, k.hour, k.partner, k.flow, d.events, d.errors, d.bytes, d.records, d.recordsFailed, d.formatErrors)
		for _, n := range d.slow {
			args = append(args, n)
		}
		if _, err := c.Exec(ctx, tx, dailyUpsert, args...); err != nil {
			return fmt.Errorf("update daily rollup: %w", err)
		}
	}
	return nil
}

// p95Hist estimates the 95th percentile from a histogram, interpolating
// linearly inside the bucket.
func p95Hist(h *[histBuckets]int64) time.Duration {
	var total int64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := float64(total) * 0.95
	var cum float64
	for k, n := range h {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			lo := 0.0
			if k > 0 {
				lo = bucketBound(k - 1)
			}
			hi := bucketBound(k)
			return time.Duration(lo+(hi-lo)*(rank-cum)/float64(n)) * time.Microsecond
		}
		cum += float64(n)
	}
	return time.Duration(bucketBound(histBuckets-1)) * time.Microsecond
}

// seriesHourly answers Series from the hourly rollup.
func (s *Store) seriesHourly(ctx context.Context, q monitor.SeriesQuery, step int64) ([]monitor.Point, error) {
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	var cols []string
	for k := range histBuckets {
		cols = append(cols, fmt.Sprintf("sum(h%02d)", k))
	}
	conds := "hour_ms >= ? AND hour_ms < ?"
	args := []any{from, step, step, from, to}
	switch {
	case q.Partner == "" && q.Flow == "":
		conds += " AND partner = ? AND flow = ?"
		args = append(args, allFlows, allFlows)
	case q.Partner != "" && q.Flow != "":
		conds += " AND partner = ? AND flow = ?"
		args = append(args, q.Partner, q.Flow)
	case q.Partner != "":
		conds += " AND partner = ?"
		args = append(args, q.Partner)
	default:
		conds += " AND flow = ?"
		args = append(args, q.Flow)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT ((hour_ms - ?) / ?) * ? AS b, sum(events), sum(errors), sum(bytes), `+
		strings.Join(cols, ", ")+` FROM monitor_hourly WHERE `+conds+` GROUP BY b ORDER BY b`, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: series: %w", err)
	}
	defer rows.Close()
	var out []monitor.Point
	for rows.Next() {
		var p monitor.Point
		var b int64
		var h [histBuckets]int64
		dst := []any{&b, &p.Events, &p.Errors, &p.Bytes}
		for k := range h {
			dst = append(dst, &h[k])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("monitor sqlite: series: %w", err)
		}
		p.T = time.UnixMilli(from + b)
		p.P95 = p95Hist(&h)
		out = append(out, p)
	}
	return out, rows.Err()
}

// aggregateHourly answers a coarse Aggregate from the hourly rollup.
func (s *Store) aggregateHourly(ctx context.Context, q monitor.AggQuery) ([]monitor.Agg, error) {
	slow := "0"
	if q.SlowerThan > 0 {
		k := monitor.SlowBound(q.SlowerThan)
		if k < 0 {
			q.Coarse = false
			return s.Aggregate(ctx, q)
		}
		slow = fmt.Sprintf("s%02d", k)
	}
	from := q.From.UnixMilli()
	from -= ((from % 3600000) + 3600000) % 3600000
	to := q.To.UnixMilli()
	// Whole days from the daily rollup, the hours before and after them
	// from the hourly one.
	d0 := from + (dayMS-((from%dayMS)+dayMS)%dayMS)%dayMS
	d1 := to - ((to%dayMS)+dayMS)%dayMS
	if d1 <= d0 {
		d0, d1 = to, to
	}
	cols := `partner, flow, events, errors, bytes, records, records_failed, format_errors, ` + slow
	rows, err := s.db.QueryContext(ctx, `SELECT partner, flow, sum(events), sum(errors), sum(bytes),
		sum(records), sum(records_failed), sum(format_errors), sum(slow) FROM (
			SELECT `+cols+` AS slow FROM monitor_hourly WHERE hour_ms >= ? AND hour_ms < ? AND partner <> ?
			UNION ALL
			SELECT `+cols+` FROM monitor_daily WHERE day_ms >= ? AND day_ms < ?
			UNION ALL
			SELECT `+cols+` FROM monitor_hourly WHERE hour_ms >= ? AND hour_ms < ? AND partner <> ?)
		GROUP BY partner, flow ORDER BY partner, flow`,
		from, min(d0, to), allFlows, d0, d1, max(d1, from), to, allFlows)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: aggregate: %w", err)
	}
	defer rows.Close()
	var out []monitor.Agg
	for rows.Next() {
		var a monitor.Agg
		if err := rows.Scan(&a.Partner, &a.Flow, &a.Events, &a.Errors, &a.Bytes, &a.Records, &a.RecordsFailed,
			&a.FormatErrors, &a.Slow); err != nil {
			return nil, fmt.Errorf("monitor sqlite: aggregate: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
