package dbtable

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

func init() { connectors.Register(Spec()) }

// Spec is the "dbtable" connector kind.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:    "dbtable",
		Summary: "front-end processor tables (前置机库表交换) on PostgreSQL, KingbaseES or openGauss: take rows by watermark in batches, handed to the bus exactly once by table/id and marked taken in the same transaction (source); write answer rows idempotently (sink)",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return DefaultSourceConfig() },
			New: func(cfg any, deps connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*SourceConfig)
				if !ok {
					return nil, fmt.Errorf("dbtable source: config is %T, want *dbtable.SourceConfig", cfg)
				}
				return NewSource(*c, deps)
			},
		},
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return DefaultSinkConfig() },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c, ok := cfg.(*SinkConfig)
				if !ok {
					return nil, fmt.Errorf("dbtable sink: config is %T, want *dbtable.SinkConfig", cfg)
				}
				return NewSink(*c, deps)
			},
		},
	}
}

// ErrBadRow is a row or a message that cannot be handed over or written.
var ErrBadRow = errors.New("dbtable: bad row")

// pools shares one *sql.DB per DSN between the sources and sinks of a process.
var pools = struct {
	sync.Mutex
	m map[string]*sql.DB
}{m: map[string]*sql.DB{}}

func open(c Conn) (*sql.DB, error) {
	dsn := c.dsn()
	if dsn == "" {
		return nil, fmt.Errorf("dbtable: %s is empty", c.DSNEnv)
	}
	pools.Lock()
	defer pools.Unlock()
	if db, ok := pools.m[dsn]; ok {
		return db, nil
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("dbtable: open: %w", err)
	}
	db.SetMaxOpenConns(c.MaxConns)
	db.SetMaxIdleConns(c.MaxConns)
	pools.m[dsn] = db
	return db, nil
}

// Source takes rows of a table and hands them to the bus.
type Source struct {
	cfg  SourceConfig
	db   *sql.DB
	deps connectors.Deps
	log  *slog.Logger
	// afterEmit, in tests, runs between the hand-over and the commit (a crash there).
	afterEmit func() error
	// ready is set once the state table exists.
	ready atomic.Bool
}

var _ connectors.Source = (*Source)(nil)

// NewSource returns a source; it connects lazily.
func NewSource(cfg SourceConfig, deps connectors.Deps) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dbtable source %s: %w", cfg.Table, err)
	}
	db, err := open(cfg.Conn)
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, db: db, deps: deps, log: deps.Logger.With("table", cfg.Table)}, nil
}

// Run hands rows over until ctx is done. A failing batch (the database
// away, emit refused) is rolled back and tried again after Interval.
func (s *Source) Run(ctx context.Context, emit connectors.Emit) error {
	for {
		n, err := s.Batch(ctx, emit)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Warn("dbtable: batch failed; retrying", "err", err)
			s.event(monitor.Event{Type: monitor.Failed, Status: monitor.Error, ErrorMessage: mask.Text(err.Error())})
		}
		if n == s.cfg.BatchSize && err == nil {
			continue // more may wait
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.deps.Clock.After(s.cfg.Interval):
		}
	}
}

func (s *Source) ensureState(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.cfg.StateTable+` (
		source TEXT NOT NULL PRIMARY KEY, watermark TEXT NOT NULL, last_id TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL)`)
	if err != nil {
		return fmt.Errorf("dbtable: state table: %w", err)
	}
	return nil
}

// stateKey names this source's row in the state table.
func (s *Source) stateKey() string { return s.cfg.Table + "/" + s.cfg.WatermarkColumn }

// Batch hands over one batch and returns the number of rows: in one
// transaction it locks the source's watermark, reads the next rows after
// it (locked, skipping rows another replica holds), emits them, marks them
// taken and stores the new watermark, and commits.
func (s *Source) Batch(ctx context.Context, emit connectors.Emit) (int, error) {
	if !s.ready.Load() {
		if err := s.ensureState(ctx); err != nil {
			return 0, err
		}
		s.ready.Store(true)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("dbtable: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+s.cfg.StateTable+` (source, watermark, last_id, updated_at) VALUES ($1, '', '', now())
		ON CONFLICT (source) DO NOTHING`, s.stateKey()); err != nil {
		return 0, fmt.Errorf("dbtable: state: %w", err)
	}
	var wm, lastID string
	if err := tx.QueryRowContext(ctx, `SELECT watermark, last_id FROM `+s.cfg.StateTable+` WHERE source = $1 FOR UPDATE`, s.stateKey()).Scan(&wm, &lastID); err != nil {
		return 0, fmt.Errorf("dbtable: state: %w", err)
	}
	cols := "*"
	if len(s.cfg.Columns) > 0 {
		cols = strings.Join(uniq(append([]string{s.cfg.IDColumn, s.cfg.WatermarkColumn}, s.cfg.Columns...)), ", ")
	}
	where := []string{}
	args := []any{}
	if wm != "" {
		// (watermark, id) after the stored pair; the columns' own types
		// read the text parameters.
		args = append(args, wm, lastID)
		where = append(where, fmt.Sprintf("(%s, %s) > ($1, $2)", s.cfg.WatermarkColumn, s.cfg.IDColumn))
	}
	if s.cfg.TakenColumn != "" {
		where = append(where, s.cfg.TakenColumn+" IS NULL")
	}
	q := "SELECT " + cols + " FROM " + s.cfg.Table
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY %s, %s LIMIT %d FOR UPDATE SKIP LOCKED", s.cfg.WatermarkColumn, s.cfg.IDColumn, s.cfg.BatchSize)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("dbtable: read %s: %w", s.cfg.Table, err)
	}
	msgs, ids, lastWM, last, err := s.scan(rows)
	if err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	start := s.deps.Clock.Now()
	if err := emit(ctx, msgs...); err != nil {
		return 0, fmt.Errorf("dbtable: hand over %d rows of %s: %w", len(msgs), s.cfg.Table, err)
	}
	if s.afterEmit != nil {
		if err := s.afterEmit(); err != nil {
			return 0, err
		}
	}
	if s.cfg.TakenColumn != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE `+s.cfg.Table+` SET `+s.cfg.TakenColumn+` = now() WHERE `+s.cfg.IDColumn+`::text = ANY($1)`, ids); err != nil {
			return 0, fmt.Errorf("dbtable: mark taken: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+s.cfg.StateTable+` SET watermark = $1, last_id = $2, updated_at = now() WHERE source = $3`,
		lastWM, last, s.stateKey()); err != nil {
		return 0, fmt.Errorf("dbtable: store watermark: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("dbtable: commit: %w", err)
	}
	s.event(monitor.Event{Type: monitor.Received, Status: monitor.OK, Records: int64(len(msgs)), Duration: s.deps.Clock.Now().Sub(start),
		Attrs: map[string]string{"watermark": lastWM}})
	return len(msgs), nil
}

func (s *Source) scan(rows *sql.Rows) (msgs []connectors.Message, ids []string, wm, last string, err error) {
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, nil, "", "", err
	}
	vals := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, "", "", fmt.Errorf("dbtable: scan %s: %w", s.cfg.Table, err)
		}
		obj := make(map[string]any, len(names))
		for i, n := range names {
			obj[n] = jsonValue(vals[i])
		}
		id := text(obj[s.cfg.IDColumn])
		w := text(obj[s.cfg.WatermarkColumn])
		if id == "" || w == "" {
			return nil, nil, "", "", fmt.Errorf("%w: %s: a row without %s or %s", ErrBadRow, s.cfg.Table, s.cfg.IDColumn, s.cfg.WatermarkColumn)
		}
		body, err := json.Marshal(obj)
		if err != nil {
			return nil, nil, "", "", fmt.Errorf("%w: %s/%s: %w", ErrBadRow, s.cfg.Table, id, err)
		}
		m := connectors.Message{IdempotencyKey: s.cfg.Table + "/" + id, Body: body,
			Headers: map[string]string{"mzhub-source": "dbtable", "dbtable-table": s.cfg.Table, "dbtable-id": id}}
		if s.cfg.KeyColumn != "" {
			m.Key = text(obj[s.cfg.KeyColumn])
		}
		msgs = append(msgs, m)
		ids = append(ids, id)
		wm, last = w, id
	}
	if err := rows.Err(); err != nil {
		return nil, nil, "", "", fmt.Errorf("dbtable: read %s: %w", s.cfg.Table, err)
	}
	return msgs, ids, wm, last, nil
}

func (s *Source) event(ev monitor.Event) {
	if s.deps.Events == nil {
		return
	}
	ev.Time = s.deps.Clock.Now()
	ev.Partner, ev.Flow, ev.Channel, ev.Direction, ev.Component = s.cfg.Partner, s.cfg.Flow, "dbtable", monitor.Inbound, "dbtable"
	ev.FileName = s.cfg.Table
	s.deps.Events.Emit(ev)
}

// jsonValue turns what the driver scanned into a JSON-friendly value.
func jsonValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	default:
		return x
	}
}

// text renders an id or watermark value as the text the database reads back.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Sink writes answer rows.
type Sink struct {
	cfg SinkConfig
	db  *sql.DB
	q   string
}

var _ connectors.Sink = (*Sink)(nil)

// NewSink returns a sink; it connects lazily.
func NewSink(cfg SinkConfig, _ connectors.Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dbtable sink %s: %w", cfg.Table, err)
	}
	db, err := open(cfg.Conn)
	if err != nil {
		return nil, err
	}
	ph := make([]string, len(cfg.Columns)+1)
	for i := range ph {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	q := "INSERT INTO " + cfg.Table + " (" + cfg.KeyColumn + ", " + strings.Join(cfg.Columns, ", ") + ") VALUES (" +
		strings.Join(ph, ", ") + ") ON CONFLICT (" + cfg.KeyColumn + ") DO NOTHING"
	return &Sink{cfg: cfg, db: db, q: q}, nil
}

// Send writes the message's JSON object as one row keyed by its
// idempotency key; a key already written changes nothing. A body that is
// not a JSON object, or a message without an idempotency key, is a
// permanent failure.
func (s *Sink) Send(ctx context.Context, msg connectors.Message) error {
	if msg.IdempotencyKey == "" {
		return connectors.Permanent(fmt.Errorf("%w: no idempotency key", ErrBadRow))
	}
	var obj map[string]any
	if err := json.Unmarshal(msg.Body, &obj); err != nil {
		return connectors.Permanent(fmt.Errorf("%w: body is not a JSON object: %w", ErrBadRow, err))
	}
	args := []any{msg.IdempotencyKey}
	for _, c := range s.cfg.Columns {
		v, ok := obj[c]
		switch x := v.(type) {
		case nil:
			args = append(args, nil)
		case string:
			args = append(args, x)
		case map[string]any, []any:
			b, _ := json.Marshal(x)
			args = append(args, string(b))
		case float64:
			args = append(args, strconv.FormatFloat(x, 'f', -1, 64))
		default:
			if !ok {
				args = append(args, nil)
				continue
			}
			args = append(args, fmt.Sprint(x))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, s.q, args...); err != nil {
		return fmt.Errorf("dbtable: write %s: %w", s.cfg.Table, err)
	}
	return nil
}
