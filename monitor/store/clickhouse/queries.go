package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
)

func dur(us float64) time.Duration {
	if math.IsNaN(us) || math.IsInf(us, 0) {
		return 0
	}
	return time.Duration(math.Round(us)) * time.Microsecond
}

// Aggregate summarises a window per partner and flow.
func (s *Store) Aggregate(ctx context.Context, q monitor.AggQuery) ([]monitor.Agg, error) {
	if q.Coarse {
		return s.aggregateHourly(ctx, q)
	}
	slow := int64(1 << 62)
	if q.SlowerThan > 0 {
		slow = q.SlowerThan.Microseconds()
	}
	rows, err := s.conn.Query(ctx, `SELECT partner, flow, toInt64(count()),
		toInt64(countIf(status = 'error')), toInt64(countIf(type = 'retried')), toInt64(countIf(type = 'dead_lettered')),
		sum(records), sum(records_failed),
		toInt64(countIf((type IN ('validated', 'rejected') AND status = 'error') OR error_class = 'format')),
		toInt64(countIf(duration_us > ?)), sum(bytes), sum(amount_fen),
		toFloat64(quantileIf(0.95)(duration_us, duration_us > 0))
		FROM monitor_events PREWHERE `+window(q.From, q.To)+`
		GROUP BY partner, flow ORDER BY partner, flow`, slow)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: aggregate: %w", err)
	}
	defer rows.Close()
	var out []monitor.Agg
	for rows.Next() {
		var a monitor.Agg
		var p95 float64
		if err := rows.Scan(&a.Partner, &a.Flow, &a.Events, &a.Errors, &a.Retries, &a.DeadLetters, &a.Records,
			&a.RecordsFailed, &a.FormatErrors, &a.Slow, &a.Bytes, &a.AmountFen, &p95); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: aggregate: %w", err)
		}
		a.P95 = dur(p95)
		out = append(out, a)
	}
	return out, rows.Err()
}

// LastSeen reads the flow_last rollup.
func (s *Store) LastSeen(ctx context.Context) ([]monitor.Last, error) {
	rows, err := s.conn.Query(ctx, `SELECT partner, flow, l[1], l[2]
		FROM (SELECT partner, flow, maxForEachMerge(last) AS l FROM monitor_flow_last GROUP BY partner, flow)
		ORDER BY partner, flow`)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: last seen: %w", err)
	}
	defer rows.Close()
	var out []monitor.Last
	for rows.Next() {
		var l monitor.Last
		var last, ok int64
		if err := rows.Scan(&l.Partner, &l.Flow, &last, &ok); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: last seen: %w", err)
		}
		l.LastEvent = time.UnixMilli(last)
		if ok > 0 {
			l.LastOK = time.UnixMilli(ok)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Batches reads the batch-stage rollup (a retried insert may count a
// stage's events twice until ops look again; the raw events stay exact).
func (s *Store) Batches(ctx context.Context, q monitor.BatchQuery) ([]monitor.BatchStage, error) {
	where, having := "", ""
	var args []any
	if q.BatchID != "" {
		where = " WHERE batch_id = ?"
		args = append(args, q.BatchID)
	}
	if !q.From.IsZero() {
		having = fmt.Sprintf(" HAVING last >= %d", q.From.UnixMilli())
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT batch_id, stage, n, first, last, s[1], s[2], s[3], s[4], s[5]
		FROM (SELECT batch_id, stage, argMaxMerge(newest) AS n, minMerge(first_ms) AS first,
			maxMerge(last_ms) AS last, sumForEachMerge(sums) AS s
			FROM monitor_batch_stages%s
			GROUP BY batch_id, stage%s ORDER BY last DESC, batch_id LIMIT %d)
		ORDER BY last DESC, batch_id`, where, having, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: batches: %w", err)
	}
	defer rows.Close()
	var out []monitor.BatchStage
	for rows.Next() {
		var b monitor.BatchStage
		var newest string
		var first, last int64
		if err := rows.Scan(&b.BatchID, &b.Stage, &newest, &first, &last, &b.Events,
			&b.Errors, &b.RecordsIn, &b.RecordsOut, &b.RecordsFailed); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: batches: %w", err)
		}
		// partner, flow, type and status of the stage's newest event
		f := strings.SplitN(newest, "\t", 4)
		f = append(f, make([]string, 4-len(f))...)
		b.Partner, b.Flow, b.LastType, b.LastStatus = f[0], f[1], monitor.EventType(f[2]), monitor.Status(f[3])
		b.FirstAt, b.LastAt = time.UnixMilli(first), time.UnixMilli(last)
		out = append(out, b)
	}
	return out, rows.Err()
}

// Failures groups failures by partner, flow and error class.
func (s *Store) Failures(ctx context.Context, from, to time.Time) ([]monitor.FailureGroup, error) {
	rows, err := s.conn.Query(ctx, `SELECT partner, flow, error_class, toInt64(count()) AS n,
		toInt64(countIf(type = 'dead_lettered')), max(ts_ms), argMax(error_message, ts_ms)
		FROM monitor_events PREWHERE `+window(from, to)+` AND (status = 'error' OR type IN ('failed', 'rejected', 'dead_lettered'))
		GROUP BY partner, flow, error_class ORDER BY n DESC, partner, flow, error_class LIMIT 500`)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: failures: %w", err)
	}
	defer rows.Close()
	var out []monitor.FailureGroup
	for rows.Next() {
		var g monitor.FailureGroup
		var last int64
		if err := rows.Scan(&g.Partner, &g.Flow, &g.ErrorClass, &g.Count, &g.DeadLetters, &last, &g.Sample); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: failures: %w", err)
		}
		g.LastAt = time.UnixMilli(last)
		out = append(out, g)
	}
	return out, rows.Err()
}

// DeadLetters returns open dead letters, newest first: dead-lettered events
// with no replayed or dropped event of the same exchange at or after them,
// read from the monitor_dead_letters copy of those three event types.
func (s *Store) DeadLetters(ctx context.Context, f monitor.Filter) ([]monitor.Event, error) {
	f.Type = monitor.DeadLettered
	w, args := where(f)
	q := fmt.Sprintf(`SELECT %s FROM (SELECT %s FROM monitor_dead_letters%s)
		ANY LEFT JOIN (SELECT exchange_id, max(ts_ms) AS settled_ms FROM monitor_dead_letters
			WHERE type IN ('replayed', 'dropped') GROUP BY exchange_id) USING exchange_id
		WHERE settled_ms < ts_ms
		ORDER BY ts_ms DESC, event_id DESC LIMIT %d`, selectColumns, selectColumns, w, f.Limited())
	return s.events(ctx, q, args...)
}

// Series counts events per bucket, from an hourly rollup when the step is
// whole hours and the window starts on an hour (the all-flows rollup when
// no partner or flow is asked for), else from the raw events.
func (s *Store) Series(ctx context.Context, q monitor.SeriesQuery) ([]monitor.Point, error) {
	step := max(q.Step.Milliseconds(), 1000)
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	var conds []string
	var args []any
	if q.Partner != "" {
		conds = append(conds, "partner = ?")
		args = append(args, q.Partner)
	}
	if q.Flow != "" {
		conds = append(conds, "flow = ?")
		args = append(args, q.Flow)
	}
	extra := ""
	if len(conds) > 0 {
		extra = " WHERE " + strings.Join(conds, " AND ")
	}
	var query string
	switch {
	case step%3600000 == 0 && from%3600000 == 0:
		table := "monitor_total_hourly"
		if extra != "" {
			table = "monitor_flow_hourly"
		}
		// sums starts with events, errors, bytes in both rollups.
		query = fmt.Sprintf(`SELECT b, s[1], s[2], s[3], p95 FROM (
			SELECT intDiv(toInt64(toUInt32(hour)) * 1000 - %d, %d) * %d AS b,
			sumForEachMerge(sums) AS s, toFloat64(quantileTDigestMerge(0.95)(duration)) AS p95
			FROM %s PREWHERE hour >= toDateTime(%d) AND hour < toDateTime(%d)%s
			GROUP BY b) ORDER BY b`, from, step, step, table, from/1000, (to+999)/1000, extra)
	default:
		query = fmt.Sprintf(`SELECT intDiv(ts_ms - %d, %d) * %d AS b,
			toInt64(count()), toInt64(countIf(status = 'error')), sum(bytes),
			toFloat64(quantileIf(0.95)(duration_us, duration_us > 0))
			FROM monitor_events PREWHERE %s%s
			GROUP BY b ORDER BY b`, from, step, step, window(q.From, q.To), extra)
	}
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: series: %w", err)
	}
	defer rows.Close()
	var out []monitor.Point
	for rows.Next() {
		var p monitor.Point
		var b int64
		var p95 float64
		if err := rows.Scan(&b, &p.Events, &p.Errors, &p.Bytes, &p95); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: series: %w", err)
		}
		p.T = time.UnixMilli(from + b)
		p.P95 = dur(p95)
		out = append(out, p)
	}
	return out, rows.Err()
}

// DropMonthsBefore drops the monthly partitions older than the month of t
// of every monitor table partitioned by month (retention).
func (s *Store) DropMonthsBefore(ctx context.Context, t time.Time) ([]string, error) {
	cut := uint32(t.Year()*100 + int(t.Month()))
	// Every table partitioned by month; the others show 'tuple()' and
	// are skipped below.
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT table, partition FROM system.parts
		WHERE database = ? AND active AND startsWith(table, 'monitor_')`, s.db)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: list partitions: %w", err)
	}
	type part struct{ table, partition string }
	var drop []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.table, &p.partition); err != nil {
			rows.Close()
			return nil, err
		}
		var month uint32
		if _, err := fmt.Sscan(p.partition, &month); err == nil && month < cut {
			drop = append(drop, p)
		}
	}
	rows.Close()
	var dropped []string
	for _, p := range drop {
		if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %s", quoteIdent(p.table), p.partition)); err != nil {
			return dropped, fmt.Errorf("monitor clickhouse: drop %s %s: %w", p.table, p.partition, err)
		}
		dropped = append(dropped, p.table+"/"+p.partition)
	}
	return dropped, nil
}

// hourlySums is how many counters precede the slow-event counts in
// monitor_flow_hourly's sums.
const hourlySums = 6

// aggregateHourly answers a coarse Aggregate from monitor_flow_hourly.
func (s *Store) aggregateHourly(ctx context.Context, q monitor.AggQuery) ([]monitor.Agg, error) {
	slow := monitor.SlowBound(q.SlowerThan)
	if q.SlowerThan > 0 && slow < 0 {
		q.Coarse = false
		return s.Aggregate(ctx, q)
	}
	from := q.From.Unix()
	from -= ((from % 3600) + 3600) % 3600
	// sums: events, errors, bytes, records, records_failed, format
	// errors, then one count per monitor.SlowBounds.
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT partner, flow, s
		FROM (SELECT partner, flow, sumForEachMerge(sums) AS s
			FROM monitor_flow_hourly WHERE hour >= toDateTime(%d) AND hour < toDateTime(%d)
			GROUP BY partner, flow) ORDER BY partner, flow`, from, (q.To.UnixMilli()+999)/1000))
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: aggregate: %w", err)
	}
	defer rows.Close()
	var out []monitor.Agg
	for rows.Next() {
		var a monitor.Agg
		var sums []int64
		if err := rows.Scan(&a.Partner, &a.Flow, &sums); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: aggregate: %w", err)
		}
		if len(sums) < hourlySums {
			return nil, fmt.Errorf("monitor clickhouse: aggregate: %d hourly sums, want at least %d", len(sums), hourlySums)
		}
		a.Events, a.Errors, a.Bytes, a.Records, a.RecordsFailed, a.FormatErrors = sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]
		if slow >= 0 && hourlySums+slow < len(sums) {
			a.Slow = sums[hourlySums+slow]
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
