package clickhouse

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shanghai-mca/mzhub/monitor"
)

//go:embed schema/schema.sql
var schemaFS embed.FS

// Schema returns the DDL statements in order.
func Schema() []string { return slices.Clone(schema()) }

// schema is the parsed schema file; opening a store reads it for every
// view and table, so it is parsed once.
var schema = sync.OnceValue(func() []string {
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
})

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
	st := &Store{conn: conn, db: o.Database}
	if err := st.migrate(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return st, nil
}

// legacy lists objects of earlier schemas that are dropped on open: views
// cost every insert, so a view whose table was replaced must go. Their
// tables keep their data until an operator drops them.
var legacy = []string{"monitor_hourly_mv", "monitor_lookup_mv"}

// view is a materialized view of the schema: its name, target and SELECT.
type view struct{ name, target, query string }

var viewRE = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\s+(.*)$`)

// views returns the schema's materialized views in order.
func views() []view {
	var out []view
	for _, stmt := range schema() {
		if m := viewRE.FindStringSubmatch(stmt); m != nil {
			out = append(out, view{m[1], m[2], m[3]})
		}
	}
	return out
}

// migrate applies the schema (idempotent), drops legacy views and fills a
// view's target that did not exist before from the events already stored:
// a view only sees new inserts. Events inserted by another replica while
// this runs may be counted twice in a new rollup; open the store on an
// existing database before the writers start to avoid it.
func (s *Store) migrate(ctx context.Context) error {
	// One read of every table's columns, in order: which tables exist, and
	// whether a rollup still has the schema's shape.
	have := map[string][]string{}
	rows, err := s.conn.Query(ctx, "SELECT table, name FROM system.columns WHERE database = ?", s.db)
	if err != nil {
		return fmt.Errorf("monitor clickhouse: list tables: %w", err)
	}
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			rows.Close()
			return fmt.Errorf("monitor clickhouse: list tables: %w", err)
		}
		have[table] = append(have[table], name)
	}
	rows.Close()
	before := map[string]bool{}
	for t := range have {
		before[t] = true
	}
	// A rollup (a view's target) whose columns are not the schema's, from
	// an earlier version, is dropped with its view and rebuilt from the
	// events below. The events table itself is never dropped.
	for _, v := range views() {
		if !before[v.target] {
			continue
		}
		if want := schemaColumns(v.target); want != nil && strings.Join(have[v.target], ",") != strings.Join(want, ",") {
			for _, name := range []string{v.name, v.target} {
				if err := s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+quoteIdent(name)); err != nil {
					return fmt.Errorf("monitor clickhouse: drop stale %s: %w", name, err)
				}
			}
			before[v.name], before[v.target] = false, false
		}
	}
	for _, stmt := range schema() {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("monitor clickhouse: schema: %w", err)
		}
	}
	for _, name := range legacy {
		if before[name] {
			if err := s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+quoteIdent(name)); err != nil {
				return fmt.Errorf("monitor clickhouse: drop legacy %s: %w", name, err)
			}
		}
	}
	if !before["monitor_events"] {
		return nil
	}
	var events uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM monitor_events").Scan(&events); err != nil {
		return fmt.Errorf("monitor clickhouse: count events: %w", err)
	}
	if events == 0 {
		return nil
	}
	for _, v := range views() {
		if before[v.target] {
			continue
		}
		if err := s.backfill(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// tableRE finds a CREATE TABLE statement's name and column list.
var tableRE = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) \((.*)\) ENGINE`)

// schemaColumns returns the column names the schema gives table, in order
// (nil: not a table of the schema).
func schemaColumns(table string) []string {
	for _, stmt := range schema() {
		m := tableRE.FindStringSubmatch(stmt)
		if m == nil || m[1] != table {
			continue
		}
		var cols []string
		for _, line := range strings.Split(m[2], "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				cols = append(cols, f[0])
			}
		}
		return cols
	}
	return nil
}

// backfill inserts what v would have produced from every stored event.
func (s *Store) backfill(ctx context.Context, v view) error {
	// The target was just created from the schema: its columns are the
	// schema's.
	cols := schemaColumns(v.target)
	if err := s.conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) %s", quoteIdent(v.target), strings.Join(cols, ", "), v.query)); err != nil {
		return fmt.Errorf("monitor clickhouse: backfill %s: %w", v.target, err)
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

// Database names the database holding the tables.
func (s *Store) Database() string { return s.db }

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
	// Columnar append: one slice per column, no per-row reflection. The
	// driver copies the values, so the slices go back to the pool after.
	c := columnPool.Get().(*columnSet)
	defer columnPool.Put(c)
	c.fill(evs)
	for i, col := range c.cols() {
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("monitor clickhouse: append column %d: %w", i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("monitor clickhouse: send %d events: %w", len(evs), err)
	}
	return nil
}

// columnSet holds one batch as columns, in the order of columns.
type columnSet struct {
	days                                                        []time.Time
	ms, bytes, records, failed, fen, durUS                      []int64
	attempts                                                    []int32
	ids, partners, flows, dirs, chans, types, statuses, xids    []string
	batches, stages, keys, refs, files, digests, classes, codes []string
	msgs, comps, nodes                                          []string
	parents, attrKeys, attrVals                                 [][]string
}

// columnPool keeps column sets between batches: a 10k-event batch is about
// 5 MB of slices, which otherwise the garbage collector scans and frees
// twenty times a second at full ingest.
var columnPool = sync.Pool{New: func() any { return new(columnSet) }}

// grow returns s with length n, reusing its array when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// fill sets the columns from evs.
func (c *columnSet) fill(evs []monitor.Event) {
	n := len(evs)
	c.days = grow(c.days, n)
	c.attempts = grow(c.attempts, n)
	for _, p := range []*[]int64{&c.ms, &c.bytes, &c.records, &c.failed, &c.fen, &c.durUS} {
		*p = grow(*p, n)
	}
	for _, p := range []*[]string{&c.ids, &c.partners, &c.flows, &c.dirs, &c.chans, &c.types, &c.statuses, &c.xids,
		&c.batches, &c.stages, &c.keys, &c.refs, &c.files, &c.digests, &c.classes, &c.codes, &c.msgs, &c.comps, &c.nodes} {
		*p = grow(*p, n)
	}
	for _, p := range []*[][]string{&c.parents, &c.attrKeys, &c.attrVals} {
		*p = grow(*p, n)
	}
	for i := range evs {
		ev := &evs[i]
		u := ev.Time.UTC()
		c.days[i] = time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
		c.ms[i], c.bytes[i], c.records[i], c.failed[i], c.fen[i], c.durUS[i] = ev.Time.UnixMilli(), ev.Bytes, ev.Records, ev.RecordsFailed, ev.AmountFen, ev.Duration.Microseconds()
		c.attempts[i] = int32(ev.Attempt)
		c.ids[i], c.partners[i], c.flows[i], c.dirs[i], c.chans[i], c.types[i], c.statuses[i], c.xids[i] = ev.ID, ev.Partner, ev.Flow, string(ev.Direction), ev.Channel, string(ev.Type), string(ev.Status), ev.ExchangeID
		c.batches[i], c.stages[i], c.keys[i], c.refs[i], c.files[i], c.digests[i], c.classes[i], c.codes[i] = ev.BatchID, ev.Stage, ev.BusinessKey, ev.PartnerRef, ev.FileName, ev.Digest, ev.ErrorClass, ev.ErrorCode
		c.msgs[i], c.comps[i], c.nodes[i] = ev.ErrorMessage, ev.Component, ev.Node
		c.parents[i] = ev.ParentIDs
		if c.parents[i] == nil {
			c.parents[i] = []string{}
		}
		// Reuse the attribute slices of the event that had this row before.
		ak, av := c.attrKeys[i][:0], c.attrVals[i][:0]
		for k, v := range ev.Attrs {
			ak = append(ak, k)
			av = append(av, v)
		}
		if ak == nil {
			ak, av = []string{}, []string{}
		}
		c.attrKeys[i], c.attrVals[i] = ak, av
	}
}

// cols returns the columns in the order of columns.
func (c *columnSet) cols() []any {
	return []any{c.days, c.ms, c.ids, c.partners, c.flows, c.dirs, c.chans, c.types, c.statuses, c.xids, c.parents,
		c.batches, c.stages, c.keys, c.refs, c.files, c.digests, c.bytes, c.records, c.failed, c.fen, c.durUS,
		c.attempts, c.classes, c.codes, c.msgs, c.comps, c.nodes, c.attrKeys, c.attrVals}
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
		pre = append(pre, "event_date >= "+day(f.From), "ts_ms >= ?")
		args = append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		pre = append(pre, "event_date <= "+day(f.To), "ts_ms < ?")
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

// day is the SQL literal of t's UTC date, the event_date of events at t.
// A condition on event_date lets the server skip whole parts by their
// min-max date: ts_ms alone is no help there, and only a partial one in
// the primary key, which starts with partner and flow.
func day(t time.Time) string { return t.UTC().Format("toDate('2006-01-02')") }

// window is the PREWHERE condition for from <= ts_ms < to, in milliseconds.
func window(from, to time.Time) string {
	return fmt.Sprintf("event_date >= %s AND event_date <= %s AND ts_ms >= %d AND ts_ms < %d",
		day(from), day(to), from.UnixMilli(), to.UnixMilli())
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// Search returns matching events, newest first. A filter on an exchange id,
// file, partner reference or business key is first looked up in
// monitor_lookup, which is ordered by key: that gives the time range of the
// matches (of only the newest limit matches when the key is the whole
// filter) and their partner and flow when there is only one, so the events
// are then read from a narrow slice of the primary key. A batch is looked
// up in monitor_batch_stages the same way, but its range covers all of its
// events, which may be many. Without a key, or with only a batch, the time
// of the limit-th newest match is found reading only ts_ms, and whole rows
// are read only from there on.
func (s *Store) Search(ctx context.Context, f monitor.Filter) ([]monitor.Event, error) {
	n, keyed, err := s.narrow(ctx, f)
	if err != nil {
		return nil, err
	}
	if keyed {
		if !n.found {
			return nil, nil
		}
		// The key's time range bounds the scan (PREWHERE).
		if l := time.UnixMilli(n.lo); f.From.IsZero() || l.After(f.From) {
			f.From = l
		}
		if h := time.UnixMilli(n.hi + 1); f.To.IsZero() || h.Before(f.To) {
			f.To = h
		}
		if n.partner != "" {
			// One partner flow holds every match: its slice of the
			// primary key is all there is to read. A filter naming
			// another keeps its own and finds nothing.
			if f.Partner == "" {
				f.Partner = n.partner
			}
			if f.Flow == "" {
				f.Flow = n.flow
			}
		}
		if !n.many {
			w, args := where(f)
			// Narrowed by a key: few rows, read them directly.
			return s.events(ctx, fmt.Sprintf("SELECT %s FROM monitor_events%s ORDER BY ts_ms DESC, event_id DESC LIMIT 1 BY event_id LIMIT %d",
				selectColumns, w, f.Limited()), args...)
		}
	}
	w, args := where(f)
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

// narrowing is what monitor_lookup or monitor_batch_stages says about a
// key: whether it matches at all, the time range of its (newest) matches,
// and their partner and flow when they all share one. many is set when the
// range is a batch's: it may hold many matches, so the newest are found by
// reading ts_ms first.
type narrowing struct {
	found, many   bool
	lo, hi        int64
	partner, flow string
}

// narrow looks the most selective key of f up in monitor_lookup, or its
// batch in monitor_batch_stages when it has no other key. keyed is false
// when f has no key. A lookup row may be duplicated until its parts merge;
// a duplicate only widens the range, it never hides a match.
func (s *Store) narrow(ctx context.Context, f monitor.Filter) (n narrowing, keyed bool, err error) {
	var kind string
	var values []string
	keys := 0
	if len(f.ExchangeIDs) > 0 {
		kind, values, keys = "x", f.ExchangeIDs, keys+1
	}
	for _, k := range []struct{ kind, v string }{{"f", f.FileName}, {"r", f.PartnerRef}, {"k", f.BusinessKey}} {
		if k.v != "" {
			if kind == "" {
				kind, values = k.kind, []string{k.v}
			}
			keys++
		}
	}
	if f.BatchID != "" {
		keys++
	}
	if kind == "" {
		if f.BatchID == "" {
			return n, false, nil
		}
		n, err = s.narrowBatch(ctx, f)
		return n, true, err
	}
	conds := []string{"kind = ?", "value IN (" + placeholders(len(values)) + ")"}
	args := []any{kind}
	for _, v := range values {
		args = append(args, v)
	}
	for _, c := range []struct {
		cond string
		v    any
		ok   bool
	}{
		{"partner = ?", f.Partner, f.Partner != ""}, {"flow = ?", f.Flow, f.Flow != ""},
		{"event_date >= " + day(f.From) + " AND ts_ms >= ?", f.From.UnixMilli(), !f.From.IsZero()},
		{"event_date <= " + day(f.To) + " AND ts_ms < ?", f.To.UnixMilli(), !f.To.IsZero()},
	} {
		if c.ok {
			conds = append(conds, c.cond)
			args = append(args, c.v)
		}
	}
	src := "monitor_lookup WHERE " + strings.Join(conds, " AND ")
	if keys == 1 && f.Type == "" && f.Status == "" && f.ErrorClass == "" {
		// The lookup answers the whole filter: only the newest limit
		// matches are needed.
		src = fmt.Sprintf("(SELECT ts_ms, partner, flow FROM %s ORDER BY ts_ms DESC LIMIT %d)", src, f.Limited())
	}
	var cnt, pairs uint64
	err = s.conn.QueryRow(ctx, `SELECT count(), min(ts_ms), max(ts_ms), uniqExact(partner, flow), any(partner), any(flow) FROM `+src, args...).
		Scan(&cnt, &n.lo, &n.hi, &pairs, &n.partner, &n.flow)
	if err != nil {
		return n, true, fmt.Errorf("monitor clickhouse: lookup: %w", err)
	}
	n.found = cnt > 0
	if pairs != 1 {
		n.partner, n.flow = "", ""
	}
	return n, true, nil
}

// narrowBatch reads the time range of f's batch, and its partner and flow
// when all of its events share one, from the batch-stage rollup.
func (s *Store) narrowBatch(ctx context.Context, f monitor.Filter) (narrowing, error) {
	n := narrowing{many: true}
	var stages uint64
	var lo, hi string
	err := s.conn.QueryRow(ctx, `SELECT count(), minMerge(first_ms), maxMerge(last_ms), minMerge(pair_min), maxMerge(pair_max)
		FROM monitor_batch_stages WHERE batch_id = ?`, f.BatchID).Scan(&stages, &n.lo, &n.hi, &lo, &hi)
	if err != nil {
		return n, fmt.Errorf("monitor clickhouse: batch lookup: %w", err)
	}
	n.found = stages > 0
	if partner, flow, ok := strings.Cut(lo, "\t"); ok && lo == hi {
		n.partner, n.flow = partner, flow
	}
	return n, nil
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
