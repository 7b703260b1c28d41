package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite event store.
type Store struct {
	db *store.DB
	// events inserts a batch many rows to a statement; stmts holds the
	// rollups' statements. Both are prepared once, not for every batch.
	events *store.MultiRow
	stmts  *store.Stmts
}

var _ monitor.Store = (*Store)(nil)

// Open opens (creating when missing) the monitor database at path and
// applies its migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	cfg := store.DefaultConfig()
	cfg.Path = path
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: %w", err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := db.Migrate(ctx, "monitor", sub); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("monitor sqlite: %w", err)
	}
	return &Store{db: db, events: store.NewMultiRow(db, rowsPerInsert, insertRows), stmts: store.NewStmts(db)}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	_ = s.events.Close()
	_ = s.stmts.Close()
	return s.db.Close()
}

const columns = `ts_ms, event_id, partner, flow, direction, channel, type, status, exchange_id, parent_ids,
	batch_id, stage, business_key, partner_ref, file_name, digest, bytes, records, records_failed,
	amount_fen, duration_us, attempt, error_class, error_code, error_message, component, node, attrs`

// rowsPerInsert rows at most go in one INSERT statement (28 parameters
// each). Each size up to it stays prepared on every pooled connection that
// ran it (store.MultiRow): 16 rows keep that to about 160 KiB a connection
// (64 rows: 450 KiB) for a few more statements per batch.
const rowsPerInsert = 16

// Append stores evs in one transaction, with multi-row INSERTs, and keeps
// the flow and batch-stage rollups.
func (s *Store) Append(ctx context.Context, evs []monitor.Event) error {
	if len(evs) == 0 {
		return nil
	}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		args := make([]any, 0, min(len(evs), rowsPerInsert)*28)
		var links []any
		err := s.events.Run(ctx, tx, len(evs), func(off, size int) []any {
			args = args[:0]
			for i := range evs[off : off+size] {
				ev := &evs[off+i]
				args = appendEventArgs(args, ev)
				for _, p := range ev.ParentIDs {
					if ev.ExchangeID != "" {
						links = append(links, p, ev.ExchangeID)
					}
				}
			}
			return args
		}, nil)
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		for off := 0; off < len(links); off += 2 * 400 {
			part := links[off:min(off+800, len(links))]
			q := `INSERT INTO monitor_lineage (parent, child) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?),", len(part)/2), ",") + ` ON CONFLICT DO NOTHING`
			if _, err := tx.ExecContext(ctx, q, part...); err != nil {
				return fmt.Errorf("insert lineage: %w", err)
			}
		}
		if err := hourly(ctx, tx, s.stmts, evs); err != nil {
			return err
		}
		return rollups(ctx, tx, s.stmts, evs)
	})
	if err != nil {
		return fmt.Errorf("monitor sqlite: append %d events: %w", len(evs), err)
	}
	return nil
}

// insertRows is the INSERT of n events. An event stored already (a spooled
// event stored again after a crash) is skipped by OR IGNORE rather than by
// ON CONFLICT (event_id) DO NOTHING: the same outcome here, since every
// column is NOT NULL and bound from Go values and event_id's uniqueness is
// the only constraint that can fail, but SQLite then needs no statement
// journal for the multi-row INSERT, which with ON CONFLICT it wrote page by
// page to a temporary file (14 % of the CPU of BenchmarkAppend).
func insertRows(n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", 28), ",") + "),"
	return `INSERT OR IGNORE INTO monitor_events (` + columns + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row, n), ",")
}

func appendEventArgs(args []any, ev *monitor.Event) []any {
	parents, attrs := "", ""
	if len(ev.ParentIDs) > 0 {
		b, _ := json.Marshal(ev.ParentIDs)
		parents = string(b)
	}
	if len(ev.Attrs) > 0 {
		b, _ := json.Marshal(ev.Attrs)
		attrs = string(b)
	}
	return append(args, ev.Time.UnixMilli(), ev.ID, ev.Partner, ev.Flow, string(ev.Direction), ev.Channel,
		string(ev.Type), string(ev.Status), ev.ExchangeID, parents, ev.BatchID, ev.Stage, ev.BusinessKey,
		ev.PartnerRef, ev.FileName, ev.Digest, ev.Bytes, ev.Records, ev.RecordsFailed, ev.AmountFen,
		ev.Duration.Microseconds(), ev.Attempt, ev.ErrorClass, ev.ErrorCode, ev.ErrorMessage,
		ev.Component, ev.Node, attrs)
}

type stageAgg struct {
	partner, flow              string
	first, last                int64
	lastType, lastStatus       string
	events, errors, in, out, f int64
}

// rollups updates monitor_flow_last and monitor_batch_stages for a batch.
// A retried batch whose events were already stored would count twice in the
// stage rollup; the writer retries only batches whose transaction failed,
// which rolled back, so that does not happen.
func rollups(ctx context.Context, tx *sql.Tx, c *store.Stmts, evs []monitor.Event) error {
	type last struct{ last, ok int64 }
	lasts := map[[2]string]last{}
	stages := map[[2]string]*stageAgg{}
	for i := range evs {
		ev := &evs[i]
		ms := ev.Time.UnixMilli()
		k := [2]string{ev.Partner, ev.Flow}
		l := lasts[k]
		l.last = max(l.last, ms)
		if ev.Status == monitor.OK {
			l.ok = max(l.ok, ms)
		}
		lasts[k] = l
		if ev.BatchID == "" {
			continue
		}
		sk := [2]string{ev.BatchID, ev.Stage}
		a := stages[sk]
		if a == nil {
			a = &stageAgg{first: ms, last: -1}
			stages[sk] = a
		}
		a.first = min(a.first, ms)
		if ms >= a.last {
			a.last, a.lastType, a.lastStatus, a.partner, a.flow = ms, string(ev.Type), string(ev.Status), ev.Partner, ev.Flow
		}
		a.events++
		if ev.Status == monitor.Error {
			a.errors++
		}
		switch ev.Type {
		case monitor.Received, monitor.Fetched, monitor.Downloaded, monitor.Claimed:
			a.in += ev.Records
		case monitor.Sent, monitor.Uploaded, monitor.Transformed, monitor.Validated, monitor.Reconciled:
			a.out += ev.Records
		}
		a.f += ev.RecordsFailed
	}
	for k, l := range lasts {
		if _, err := c.Exec(ctx, tx, `INSERT INTO monitor_flow_last (partner, flow, last_ms, last_ok_ms) VALUES (?, ?, ?, ?)
			ON CONFLICT (partner, flow) DO UPDATE SET last_ms = max(last_ms, excluded.last_ms), last_ok_ms = max(last_ok_ms, excluded.last_ok_ms)`,
			k[0], k[1], l.last, l.ok); err != nil {
			return fmt.Errorf("update flow last: %w", err)
		}
	}
	for k, a := range stages {
		if _, err := c.Exec(ctx, tx, `INSERT INTO monitor_batch_stages (batch_id, stage, partner, flow, first_ms, last_ms,
			last_type, last_status, events, errors, records_in, records_out, records_failed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (batch_id, stage) DO UPDATE SET
				partner = CASE WHEN excluded.last_ms >= last_ms THEN excluded.partner ELSE partner END,
				flow = CASE WHEN excluded.last_ms >= last_ms THEN excluded.flow ELSE flow END,
				last_type = CASE WHEN excluded.last_ms >= last_ms THEN excluded.last_type ELSE last_type END,
				last_status = CASE WHEN excluded.last_ms >= last_ms THEN excluded.last_status ELSE last_status END,
				first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms),
				events = events + excluded.events, errors = errors + excluded.errors,
				records_in = records_in + excluded.records_in, records_out = records_out + excluded.records_out,
				records_failed = records_failed + excluded.records_failed`,
			k[0], k[1], a.partner, a.flow, a.first, a.last, a.lastType, a.lastStatus, a.events, a.errors, a.in, a.out, a.f); err != nil {
			return fmt.Errorf("update batch stages: %w", err)
		}
	}
	return nil
}

// partialIndexed columns have an index WHERE col <> ”.
var partialIndexed = map[string]bool{"batch_id": true, "file_name": true, "partner_ref": true, "business_key": true}

// where builds the WHERE clause of a filter.
func where(f monitor.Filter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, a ...any) { conds = append(conds, cond); args = append(args, a...) }
	if !f.From.IsZero() {
		add("ts_ms >= ?", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		add("ts_ms < ?", f.To.UnixMilli())
	}
	for _, c := range []struct{ col, v string }{{"partner", f.Partner}, {"flow", f.Flow}, {"type", string(f.Type)},
		{"status", string(f.Status)}, {"batch_id", f.BatchID}, {"file_name", f.FileName}, {"partner_ref", f.PartnerRef},
		{"business_key", f.BusinessKey}, {"error_class", f.ErrorClass}} {
		if c.v == "" {
			continue
		}
		add(c.col+" = ?", c.v)
		if partialIndexed[c.col] {
			// The partial index on col applies only when the query carries
			// its WHERE term verbatim.
			conds = append(conds, c.col+" <> ''")
		}
	}
	if len(f.ExchangeIDs) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?,", len(f.ExchangeIDs)), ",")
		for _, id := range f.ExchangeIDs {
			args = append(args, id)
		}
		conds = append(conds, "exchange_id IN ("+ph+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Search returns matching events, newest first.
func (s *Store) Search(ctx context.Context, f monitor.Filter) ([]monitor.Event, error) {
	w, args := where(f)
	args = append(args, f.Limited())
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM monitor_events`+w+` ORDER BY ts_ms DESC, seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: search: %w", err)
	}
	return scanEvents(rows)
}

func scanEvents(rows *sql.Rows) ([]monitor.Event, error) {
	defer rows.Close()
	var out []monitor.Event
	for rows.Next() {
		var ev monitor.Event
		var ms, durUS int64
		var dir, typ, status, parents, attrs string
		if err := rows.Scan(&ms, &ev.ID, &ev.Partner, &ev.Flow, &dir, &ev.Channel, &typ, &status, &ev.ExchangeID,
			&parents, &ev.BatchID, &ev.Stage, &ev.BusinessKey, &ev.PartnerRef, &ev.FileName, &ev.Digest, &ev.Bytes,
			&ev.Records, &ev.RecordsFailed, &ev.AmountFen, &durUS, &ev.Attempt, &ev.ErrorClass, &ev.ErrorCode,
			&ev.ErrorMessage, &ev.Component, &ev.Node, &attrs); err != nil {
			return nil, fmt.Errorf("monitor sqlite: scan event: %w", err)
		}
		ev.Time = time.UnixMilli(ms)
		ev.Duration = time.Duration(durUS) * time.Microsecond
		ev.Direction, ev.Type, ev.Status = monitor.Direction(dir), monitor.EventType(typ), monitor.Status(status)
		if parents != "" {
			_ = json.Unmarshal([]byte(parents), &ev.ParentIDs)
		}
		if attrs != "" {
			_ = json.Unmarshal([]byte(attrs), &ev.Attrs)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("monitor sqlite: read events: %w", err)
	}
	return out, nil
}

// Children returns lineage links from the given parents.
func (s *Store) Children(ctx context.Context, ids []string, limit int) ([]monitor.Link, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = 1000
	}
	args := make([]any, 0, len(ids)+1)
	for _, id := range ids {
		args = append(args, id)
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, `SELECT parent, child FROM monitor_lineage WHERE parent IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")+`) ORDER BY parent, child LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: children: %w", err)
	}
	defer rows.Close()
	var out []monitor.Link
	for rows.Next() {
		var l monitor.Link
		if err := rows.Scan(&l.Parent, &l.Child); err != nil {
			return nil, fmt.Errorf("monitor sqlite: children: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
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
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	rows, err := s.db.QueryContext(ctx, `SELECT partner, flow, count(*),
		sum(status = 'error'), sum(type = 'retried'), sum(type = 'dead_lettered'),
		sum(records), sum(records_failed),
		sum((type IN ('validated', 'rejected') AND status = 'error') OR error_class = 'format'),
		sum(duration_us > ?), sum(bytes), sum(amount_fen)
		FROM monitor_events WHERE ts_ms >= ? AND ts_ms < ? GROUP BY partner, flow ORDER BY partner, flow`, slow, from, to)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: aggregate: %w", err)
	}
	defer rows.Close()
	var out []monitor.Agg
	idx := map[[2]string]int{}
	for rows.Next() {
		var a monitor.Agg
		if err := rows.Scan(&a.Partner, &a.Flow, &a.Events, &a.Errors, &a.Retries, &a.DeadLetters, &a.Records,
			&a.RecordsFailed, &a.FormatErrors, &a.Slow, &a.Bytes, &a.AmountFen); err != nil {
			return nil, fmt.Errorf("monitor sqlite: aggregate: %w", err)
		}
		idx[[2]string{a.Partner, a.Flow}] = len(out)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if q.SkipP95 {
		return out, nil
	}
	durs, err := s.durations(ctx, `SELECT partner || char(0) || flow, duration_us FROM monitor_events
		WHERE ts_ms >= ? AND ts_ms < ? AND duration_us > 0`, from, to)
	if err != nil {
		return nil, err
	}
	for k, d := range durs {
		pf := strings.SplitN(k, "\x00", 2)
		if i, ok := idx[[2]string{pf[0], pf[1]}]; ok {
			out[i].P95 = p95(d)
		}
	}
	return out, nil
}

// durations groups duration_us values by the first column.
func (s *Store) durations(ctx context.Context, q string, args ...any) (map[string][]int64, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: durations: %w", err)
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var k string
		var d int64
		if err := rows.Scan(&k, &d); err != nil {
			return nil, fmt.Errorf("monitor sqlite: durations: %w", err)
		}
		out[k] = append(out[k], d)
	}
	return out, rows.Err()
}

// p95 of microsecond durations (nearest rank).
func p95(us []int64) time.Duration {
	if len(us) == 0 {
		return 0
	}
	sort.Slice(us, func(i, j int) bool { return us[i] < us[j] })
	i := (len(us)*95+99)/100 - 1
	return time.Duration(us[max(i, 0)]) * time.Microsecond
}

// LastSeen reads the flow rollup.
func (s *Store) LastSeen(ctx context.Context) ([]monitor.Last, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT partner, flow, last_ms, last_ok_ms FROM monitor_flow_last ORDER BY partner, flow`)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: last seen: %w", err)
	}
	defer rows.Close()
	var out []monitor.Last
	for rows.Next() {
		var l monitor.Last
		var last, ok int64
		if err := rows.Scan(&l.Partner, &l.Flow, &last, &ok); err != nil {
			return nil, fmt.Errorf("monitor sqlite: last seen: %w", err)
		}
		l.LastEvent = time.UnixMilli(last)
		if ok > 0 {
			l.LastOK = time.UnixMilli(ok)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Batches reads the batch-stage rollup. With From set, stages whose newest
// event is older are left out.
func (s *Store) Batches(ctx context.Context, q monitor.BatchQuery) ([]monitor.BatchStage, error) {
	conds := []string{"1 = 1"}
	var args []any
	if !q.From.IsZero() {
		conds = append(conds, "last_ms >= ?")
		args = append(args, q.From.UnixMilli())
	}
	if q.BatchID != "" {
		conds = append(conds, "batch_id = ?")
		args = append(args, q.BatchID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 500
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, `SELECT batch_id, stage, partner, flow, first_ms, last_ms, last_type, last_status,
		events, errors, records_in, records_out, records_failed
		FROM monitor_batch_stages WHERE `+strings.Join(conds, " AND ")+`
		ORDER BY last_ms DESC, batch_id, first_ms LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: batches: %w", err)
	}
	defer rows.Close()
	var out []monitor.BatchStage
	for rows.Next() {
		var b monitor.BatchStage
		var first, last int64
		var typ, status string
		if err := rows.Scan(&b.BatchID, &b.Stage, &b.Partner, &b.Flow, &first, &last, &typ, &status, &b.Events,
			&b.Errors, &b.RecordsIn, &b.RecordsOut, &b.RecordsFailed); err != nil {
			return nil, fmt.Errorf("monitor sqlite: batches: %w", err)
		}
		b.FirstAt, b.LastAt = time.UnixMilli(first), time.UnixMilli(last)
		b.LastType, b.LastStatus = monitor.EventType(typ), monitor.Status(status)
		out = append(out, b)
	}
	return out, rows.Err()
}

// Failures groups failures by partner, flow and error class.
func (s *Store) Failures(ctx context.Context, from, to time.Time) ([]monitor.FailureGroup, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT partner, flow, error_class, count(*), sum(type = 'dead_lettered'),
		max(ts_ms), error_message
		FROM monitor_events WHERE ts_ms >= ? AND ts_ms < ? AND (status = 'error' OR type IN ('failed', 'rejected', 'dead_lettered'))
		GROUP BY partner, flow, error_class ORDER BY count(*) DESC, partner, flow, error_class LIMIT 500`,
		from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: failures: %w", err)
	}
	defer rows.Close()
	var out []monitor.FailureGroup
	for rows.Next() {
		var g monitor.FailureGroup
		var last int64
		if err := rows.Scan(&g.Partner, &g.Flow, &g.ErrorClass, &g.Count, &g.DeadLetters, &last, &g.Sample); err != nil {
			return nil, fmt.Errorf("monitor sqlite: failures: %w", err)
		}
		g.LastAt = time.UnixMilli(last)
		out = append(out, g)
	}
	return out, rows.Err()
}

// DeadLetters returns open dead letters, newest first.
func (s *Store) DeadLetters(ctx context.Context, f monitor.Filter) ([]monitor.Event, error) {
	f.Type = monitor.DeadLettered
	w, args := where(f)
	args = append(args, f.Limited())
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM monitor_events d`+w+`
		AND NOT EXISTS (SELECT 1 FROM monitor_events r WHERE r.exchange_id = d.exchange_id
			AND r.type IN ('replayed', 'dropped') AND r.ts_ms >= d.ts_ms)
		ORDER BY ts_ms DESC, seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: dead letters: %w", err)
	}
	return scanEvents(rows)
}

// Series counts events per bucket, from the hourly rollup when the step is
// whole hours and the window starts on an hour (p95 then comes from a
// histogram with 1.5x buckets, interpolated), else from the raw events.
func (s *Store) Series(ctx context.Context, q monitor.SeriesQuery) ([]monitor.Point, error) {
	step := max(q.Step.Milliseconds(), 1000)
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	if step%3600000 == 0 && from%3600000 == 0 {
		return s.seriesHourly(ctx, q, step)
	}
	conds := "ts_ms >= ? AND ts_ms < ?"
	args := []any{from, step, step, from, to}
	if q.Partner != "" {
		conds += " AND partner = ?"
		args = append(args, q.Partner)
	}
	if q.Flow != "" {
		conds += " AND flow = ?"
		args = append(args, q.Flow)
	}
	bucket := `((ts_ms - ?) / ?) * ?`
	rows, err := s.db.QueryContext(ctx, `SELECT `+bucket+` AS b, count(*), sum(status = 'error'), sum(bytes)
		FROM monitor_events WHERE `+conds+` GROUP BY b ORDER BY b`, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: series: %w", err)
	}
	defer rows.Close()
	var out []monitor.Point
	idx := map[int64]int{}
	for rows.Next() {
		var p monitor.Point
		var b int64
		if err := rows.Scan(&b, &p.Events, &p.Errors, &p.Bytes); err != nil {
			return nil, fmt.Errorf("monitor sqlite: series: %w", err)
		}
		p.T = time.UnixMilli(from + b)
		idx[b] = len(out)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	durs, err := s.durations(ctx, `SELECT CAST(`+bucket+` AS TEXT), duration_us FROM monitor_events WHERE `+conds+` AND duration_us > 0`, args...)
	if err != nil {
		return nil, err
	}
	for k, d := range durs {
		var b int64
		fmt.Sscan(k, &b)
		if i, ok := idx[b]; ok {
			out[i].P95 = p95(d)
		}
	}
	return out, nil
}

// DropMonthsBefore deletes events older than t (retention; the SQLite
// counterpart of dropping ClickHouse's monthly partitions).
func (s *Store) DropMonthsBefore(ctx context.Context, t time.Time) ([]string, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM monitor_events WHERE ts_ms < ?`, t.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("monitor sqlite: retention: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return []string{fmt.Sprintf("monitor_events: %d events before %s", n, t.Format("2006-01"))}, nil
	}
	return nil, nil
}
