package clickhouse

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shanghai-mca/mzhub/monitor"
)

//go:embed schema/schema.sql
var schemaFS embed.FS

// Schema returns the DDL statements in order.
func Schema() []string {
	b, _ := schemaFS.ReadFile("schema/schema.sql")
	var out []string
	for _, part := range strings.Split(string(b), "\n;\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSpace(strings.Join(lines, "\n")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Options configure the store.
type Options struct {
	// Addr is host:port of the native protocol.
	Addr string
	// Database holds the tables; it is created when missing.
	Database string
	// Username and Password authenticate.
	Username string
	Password string
	// DialTimeout bounds connecting (default 5 s).
	DialTimeout time.Duration
}

// Store is the ClickHouse event store.
type Store struct {
	conn driver.Conn
	db   string
}

var _ monitor.Store = (*Store)(nil)

// Open connects, creates the database and applies the schema (idempotent).
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Addr == "" {
		return nil, errors.New("monitor clickhouse: addr required")
	}
	if o.Database == "" {
		o.Database = "mzhub"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	admin, err := dial(o, "default")
	if err != nil {
		return nil, err
	}
	err = admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(o.Database))
	_ = admin.Close()
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: create database %s: %w", o.Database, err)
	}
	conn, err := dial(o, o.Database)
	if err != nil {
		return nil, err
	}
	for _, stmt := range Schema() {
		if err := conn.Exec(ctx, stmt); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("monitor clickhouse: schema: %w", err)
		}
	}
	st := &Store{conn: conn, db: o.Database}
	if err := st.backfillLookup(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return st, nil
}

// backfillLookup fills monitor_lookup from existing events when it is empty
// (a database from before the table existed); views only see new inserts.
func (s *Store) backfillLookup(ctx context.Context) error {
	var lookups, events uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM monitor_lookup").Scan(&lookups); err != nil {
		return fmt.Errorf("monitor clickhouse: count lookup: %w", err)
	}
	if lookups > 0 {
		return nil
	}
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM monitor_events").Scan(&events); err != nil {
		return fmt.Errorf("monitor clickhouse: count events: %w", err)
	}
	if events == 0 {
		return nil
	}
	err := s.conn.Exec(ctx, `INSERT INTO monitor_lookup (event_date, kind, value, partner, flow, ts_ms)
		SELECT event_date, tupleElement(kv, 1), tupleElement(kv, 2), partner, flow, ts_ms FROM monitor_events
		ARRAY JOIN [('x', exchange_id), ('b', batch_id), ('f', file_name), ('r', partner_ref), ('k', business_key)] AS kv
		WHERE tupleElement(kv, 2) != ''`)
	if err != nil {
		return fmt.Errorf("monitor clickhouse: backfill lookup: %w", err)
	}
	err = s.conn.Exec(ctx, `INSERT INTO monitor_dead_letters (`+columns+`) SELECT `+columns+` FROM monitor_events
		WHERE type IN ('dead_lettered', 'replayed', 'dropped')`)
	if err != nil {
		return fmt.Errorf("monitor clickhouse: backfill dead letters: %w", err)
	}
	return nil
}

// DropDatabase drops o.Database (tests and decommissioning).
func DropDatabase(ctx context.Context, o Options) error {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	conn, err := dial(o, "default")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(o.Database)); err != nil {
		return fmt.Errorf("monitor clickhouse: drop database %s: %w", o.Database, err)
	}
	return nil
}

func dial(o Options, db string) (driver.Conn, error) {
	conn, err := ch.Open(&ch.Options{
		Addr:         []string{o.Addr},
		Auth:         ch.Auth{Database: db, Username: o.Username, Password: o.Password},
		DialTimeout:  o.DialTimeout,
		Compression:  &ch.Compression{Method: ch.CompressionLZ4},
		MaxOpenConns: 8,
	})
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: connect %s: %w", o.Addr, err)
	}
	return conn, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// Close closes the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Conn exposes the connection (tests, benchmarks).
func (s *Store) Conn() driver.Conn { return s.conn }

const columns = `event_date, ts_ms, event_id, partner, flow, direction, channel, type, status, exchange_id, parent_ids,
	batch_id, stage, business_key, partner_ref, file_name, digest, bytes, records, records_failed,
	amount_fen, duration_us, attempt, error_class, error_code, error_message, component, node, attr_keys, attr_values`

// selectColumns are read back in this order by scanEvents.
const selectColumns = `ts_ms, event_id, partner, flow, direction, channel, type, status, exchange_id, parent_ids,
	batch_id, stage, business_key, partner_ref, file_name, digest, bytes, records, records_failed,
	amount_fen, duration_us, attempt, error_class, error_code, error_message, component, node, attr_keys, attr_values`

// Append sends evs as one native-protocol batch (the writer batches 10k or 1 s).
func (s *Store) Append(ctx context.Context, evs []monitor.Event) error {
	if len(evs) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO monitor_events ("+columns+")")
	if err != nil {
		return fmt.Errorf("monitor clickhouse: prepare batch: %w", err)
	}
	defer func() { _ = b.Abort() }()
	// Columnar append: one slice per column, no per-row reflection.
	n := len(evs)
	var (
		days                                                        = make([]time.Time, n)
		ms, bytes, records, failed, fen, durUS                      = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		attempts                                                    = make([]int32, n)
		ids, partners, flows, dirs, chans, types, statuses, xids    = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		batches, stages, keys, refs, files, digests, classes, codes = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		msgs, comps, nodes                                          = make([]string, n), make([]string, n), make([]string, n)
		parents, attrKeys, attrVals                                 = make([][]string, n), make([][]string, n), make([][]string, n)
	)
	for i := range evs {
		ev := &evs[i]
		u := ev.Time.UTC()
		days[i] = time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
		ms[i], bytes[i], records[i], failed[i], fen[i], durUS[i] = ev.Time.UnixMilli(), ev.Bytes, ev.Records, ev.RecordsFailed, ev.AmountFen, ev.Duration.Microseconds()
		attempts[i] = int32(ev.Attempt)
		ids[i], partners[i], flows[i], dirs[i], chans[i], types[i], statuses[i], xids[i] = ev.ID, ev.Partner, ev.Flow, string(ev.Direction), ev.Channel, string(ev.Type), string(ev.Status), ev.ExchangeID
		batches[i], stages[i], keys[i], refs[i], files[i], digests[i], classes[i], codes[i] = ev.BatchID, ev.Stage, ev.BusinessKey, ev.PartnerRef, ev.FileName, ev.Digest, ev.ErrorClass, ev.ErrorCode
		msgs[i], comps[i], nodes[i] = ev.ErrorMessage, ev.Component, ev.Node
		parents[i] = ev.ParentIDs
		if parents[i] == nil {
			parents[i] = []string{}
		}
		ak := make([]string, 0, len(ev.Attrs))
		av := make([]string, 0, len(ev.Attrs))
		for k, v := range ev.Attrs {
			ak = append(ak, k)
			av = append(av, v)
		}
		attrKeys[i], attrVals[i] = ak, av
	}
	cols := []any{days, ms, ids, partners, flows, dirs, chans, types, statuses, xids, parents, batches, stages, keys,
		refs, files, digests, bytes, records, failed, fen, durUS, attempts, classes, codes, msgs, comps, nodes, attrKeys, attrVals}
	for i, col := range cols {
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("monitor clickhouse: append column %d: %w", i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("monitor clickhouse: send %d events: %w", len(evs), err)
	}
	return nil
}

// where builds " PREWHERE <conditions>" for a filter. Conditions go to
// PREWHERE explicitly: ClickHouse 18.16 does not move them there by itself,
// and reading whole rows before filtering on time is ten times slower on a
// large table.
func where(f monitor.Filter) (string, []any) {
	return whereWith(f, 0)
}

// whereWith is where with an extra lower time bound (0: none).
func whereWith(f monitor.Filter, minTS int64) (string, []any) {
	var pre, conds []string
	var args []any
	if !f.From.IsZero() {
		pre = append(pre, "ts_ms >= ?")
		args = append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		pre = append(pre, "ts_ms < ?")
		args = append(args, f.To.UnixMilli())
	}
	if minTS != 0 {
		pre = append(pre, fmt.Sprintf("ts_ms >= %d", minTS))
	}
	for _, c := range []struct{ col, v string }{{"partner", f.Partner}, {"flow", f.Flow}, {"type", string(f.Type)},
		{"status", string(f.Status)}, {"batch_id", f.BatchID}, {"file_name", f.FileName}, {"partner_ref", f.PartnerRef},
		{"business_key", f.BusinessKey}, {"error_class", f.ErrorClass}} {
		if c.v != "" {
			conds = append(conds, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if len(f.ExchangeIDs) > 0 {
		conds = append(conds, "exchange_id IN ("+placeholders(len(f.ExchangeIDs))+")")
		for _, id := range f.ExchangeIDs {
			args = append(args, id)
		}
	}
	// Every condition is cheap to evaluate on its own column and selective:
	// all of them go to PREWHERE, whole rows are read only for matches.
	pre = append(pre, conds...)
	if len(pre) == 0 {
		return "", args
	}
	return " PREWHERE " + strings.Join(pre, " AND "), args
}

// and appends cond to a clause from where.
func and(clause, cond string) string {
	if strings.Contains(clause, " WHERE ") {
		return clause + " AND " + cond
	}
	return clause + " WHERE " + cond
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// Search returns matching events, newest first. A filter on an exchange id,
// batch, file, partner reference or business key is first narrowed through
// monitor_lookup to (partner, flow, time range), which the events' primary
// key serves. Then the time of the limit-th newest match is found reading
// only ts_ms, and whole rows are read only from there on.
func (s *Store) Search(ctx context.Context, f monitor.Filter) ([]monitor.Event, error) {
	extra, extraArgs, lo, hi, found, err := s.narrow(ctx, f)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	if extra != "" {
		// The key's time range bounds the scan (PREWHERE).
		if l := time.UnixMilli(lo); f.From.IsZero() || l.After(f.From) {
			f.From = l
		}
		if h := time.UnixMilli(hi + 1); f.To.IsZero() || h.Before(f.To) {
			f.To = h
		}
	}
	w, args := where(f)
	if extra != "" {
		w = and(w, extra)
		args = append(args, extraArgs...)
		// Narrowed by a key: few rows, read them directly.
		return s.events(ctx, fmt.Sprintf("SELECT %s FROM monitor_events%s ORDER BY ts_ms DESC, event_id DESC LIMIT 1 BY event_id LIMIT %d",
			selectColumns, w, f.Limited()), args...)
	}
	var tss []int64
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT ts_ms FROM monitor_events%s ORDER BY ts_ms DESC LIMIT %d", w, f.Limited()), args...)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: search: %w", err)
	}
	for rows.Next() {
		var ts int64
		if err := rows.Scan(&ts); err != nil {
			rows.Close()
			return nil, fmt.Errorf("monitor clickhouse: search: %w", err)
		}
		tss = append(tss, ts)
	}
	rows.Close()
	if len(tss) == 0 {
		return nil, nil
	}
	var minTS int64
	if len(tss) == f.Limited() {
		minTS = tss[len(tss)-1]
	}
	w, args = whereWith(f, minTS)
	q := fmt.Sprintf("SELECT %s FROM monitor_events%s ORDER BY ts_ms DESC, event_id DESC LIMIT 1 BY event_id LIMIT %d",
		selectColumns, w, f.Limited())
	return s.events(ctx, q, args...)
}

// narrow turns the most selective key of f into a condition on the primary
// key via monitor_lookup. found is false when the key matches nothing.
func (s *Store) narrow(ctx context.Context, f monitor.Filter) (cond string, args []any, lo, hi int64, found bool, err error) {
	var kind string
	var values []string
	switch {
	case len(f.ExchangeIDs) > 0:
		kind, values = "x", f.ExchangeIDs
	case f.BatchID != "":
		kind, values = "b", []string{f.BatchID}
	case f.FileName != "":
		kind, values = "f", []string{f.FileName}
	case f.PartnerRef != "":
		kind, values = "r", []string{f.PartnerRef}
	case f.BusinessKey != "":
		kind, values = "k", []string{f.BusinessKey}
	default:
		return "", nil, 0, 0, true, nil
	}
	largs := []any{kind}
	for _, v := range values {
		largs = append(largs, v)
	}
	rows, err := s.conn.Query(ctx, `SELECT partner, flow, min(ts_ms), max(ts_ms) FROM monitor_lookup
		WHERE kind = ? AND value IN (`+placeholders(len(values))+`) GROUP BY partner, flow LIMIT 1000`, largs...)
	if err != nil {
		return "", nil, 0, 0, false, fmt.Errorf("monitor clickhouse: lookup: %w", err)
	}
	defer rows.Close()
	var tuples []string
	lo, hi = int64(math.MaxInt64), int64(math.MinInt64)
	for rows.Next() {
		var p, fl string
		var a, b int64
		if err := rows.Scan(&p, &fl, &a, &b); err != nil {
			return "", nil, 0, 0, false, fmt.Errorf("monitor clickhouse: lookup: %w", err)
		}
		tuples = append(tuples, "(?, ?)")
		args = append(args, p, fl)
		lo, hi = min(lo, a), max(hi, b)
	}
	if err := rows.Err(); err != nil {
		return "", nil, 0, 0, false, fmt.Errorf("monitor clickhouse: lookup: %w", err)
	}
	if len(tuples) == 0 {
		return "", nil, 0, 0, false, nil
	}
	if len(tuples) == 1000 {
		// Too spread to help: search without narrowing.
		return "", nil, 0, 0, true, nil
	}
	cond = fmt.Sprintf("(partner, flow) IN (%s)", strings.Join(tuples, ", "))
	return cond, args, lo, hi, true, nil
}

func (s *Store) events(ctx context.Context, q string, args ...any) ([]monitor.Event, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: query events: %w", err)
	}
	defer rows.Close()
	var out []monitor.Event
	for rows.Next() {
		var ev monitor.Event
		var ms, durUS int64
		var attempt int32
		var dir, typ, status string
		var keys, vals []string
		if err := rows.Scan(&ms, &ev.ID, &ev.Partner, &ev.Flow, &dir, &ev.Channel, &typ, &status, &ev.ExchangeID,
			&ev.ParentIDs, &ev.BatchID, &ev.Stage, &ev.BusinessKey, &ev.PartnerRef, &ev.FileName, &ev.Digest, &ev.Bytes,
			&ev.Records, &ev.RecordsFailed, &ev.AmountFen, &durUS, &attempt, &ev.ErrorClass, &ev.ErrorCode,
			&ev.ErrorMessage, &ev.Component, &ev.Node, &keys, &vals); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: scan event: %w", err)
		}
		ev.Time = time.UnixMilli(ms)
		ev.Duration = time.Duration(durUS) * time.Microsecond
		ev.Attempt = int(attempt)
		ev.Direction, ev.Type, ev.Status = monitor.Direction(dir), monitor.EventType(typ), monitor.Status(status)
		if len(ev.ParentIDs) == 0 {
			ev.ParentIDs = nil
		}
		if len(keys) > 0 && len(keys) == len(vals) {
			ev.Attrs = make(map[string]string, len(keys))
			for i, k := range keys {
				ev.Attrs[k] = vals[i]
			}
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("monitor clickhouse: read events: %w", err)
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
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT parent, child FROM monitor_lineage WHERE parent IN (%s)
		GROUP BY parent, child ORDER BY parent, child LIMIT %d`, placeholders(len(ids)), limit), args...)
	if err != nil {
		return nil, fmt.Errorf("monitor clickhouse: children: %w", err)
	}
	defer rows.Close()
	var out []monitor.Link
	for rows.Next() {
		var l monitor.Link
		if err := rows.Scan(&l.Parent, &l.Child); err != nil {
			return nil, fmt.Errorf("monitor clickhouse: children: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}
