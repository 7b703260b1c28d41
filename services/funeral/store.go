package funeral

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Component is the name under which the funeral schema is migrated.
const Component = "funeral"

// Record is one stored partner record.
type Record struct {
	// PartnerID is the pushing partner (e.g. "funeral.fh01").
	PartnerID string
	// Kind is the resource kind (hall, vehicle, ...).
	Kind string
	// ID is the partner's own record id.
	ID string
	// Version is the partner's version of the record.
	Version int64
	// Revision is the hub's revision, exposed as the ETag.
	Revision int64
	// StoredAt is when the hub stored this revision.
	StoredAt time.Time
	// Deleted marks a withdrawn record.
	Deleted bool
	// Status is the business status used by ops views (body status, ...).
	Status string
	// RefAt is a kind-specific reference time (body received), zero if none.
	RefAt time.Time
	// Data is the stored JSON, personal data already masked.
	Data json.RawMessage
	// Seq is the change-log sequence of the last change.
	Seq int64
}

// ETag returns the record's entity tag.
func (r Record) ETag() string { return `"` + strconv.FormatInt(r.Revision, 10) + `"` }

// MarshalJSON renders the record as the API documents it. It is written by
// hand: it runs for every answer and every change event, and Data is
// already valid JSON (the store wrote it).
func (r Record) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 160+len(r.Data))
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"partner_id":`...)
	b = appendJSONString(b, r.PartnerID)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, `,"revision":`...)
	b = strconv.AppendInt(b, r.Revision, 10)
	b = append(b, `,"stored_at":"`...)
	b = r.StoredAt.In(shanghai).AppendFormat(b, time.RFC3339)
	b = append(b, '"')
	if r.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	b = append(b, `,"data":`...)
	if len(r.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, r.Data...)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hexdigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Write is one change submitted to the store.
type Write struct {
	PartnerID, Kind, ID string
	// Version is the partner's version (ignored for deletes).
	Version int64
	// Hash is the SM3 hex of the canonical request body.
	Hash string
	// Data is the stored (masked) JSON.
	Data   []byte
	Status string
	RefAt  time.Time
	// IfMatch is the ETag the change is based on ("" when none).
	IfMatch string
	// IdemKey and ReqHash implement the Idempotency-Key header.
	IdemKey, ReqHash string
	// Delete withdraws the record.
	Delete bool
}

// Result is the outcome of a Write.
type Result struct {
	// Record is the stored record after the write.
	Record Record
	// Changed is false when the write was a replay of stored content.
	Changed bool
	// Replayed holds the first answer of an Idempotency-Key replay.
	Replayed *IdemAnswer
}

// IdemAnswer is a stored answer to a request with an Idempotency-Key.
type IdemAnswer struct {
	Status int
	ETag   string
	Body   []byte
}

// Store keeps funeral records in the state database. Writes from many
// goroutines are grouped into one transaction (group commit) by a single
// writer goroutine, which Close stops.
type Store struct {
	db   *store.DB
	now  func() time.Time
	in   chan *pending
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// MaxBatch bounds the writes grouped in one transaction.
	maxBatch int
	// linger is how long the writer waits for more writes before it
	// commits a batch (0: commit what is queued at once).
	linger time.Duration
	// prepared holds the write statements, prepared once on the pool.
	prepared *stmts
	// seal seals record bodies and remembered answers at rest (deceased
	// persons' names, contacts); nil stores them as they are.
	seal Sealer
	// batches, writes and commitTime count the writer's work (WriterStats).
	batches, writes, commitTime atomic.Int64
}

// WriterStats tells how the group commit behaves: transactions, writes and
// the time spent committing them.
type WriterStats struct {
	Batches, Writes int64
	CommitTime      time.Duration
}

// WriterStats returns the writer's counters since the store opened.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{Batches: s.batches.Load(), Writes: s.writes.Load(), CommitTime: time.Duration(s.commitTime.Load())}
}

type pending struct {
	w   Write
	ctx context.Context
	res Result
	err error
	out chan struct{}
}

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("funeral: store closed")

// OpenStore migrates the funeral schema and starts the writer.
func OpenStore(ctx context.Context, db *store.DB, now func() time.Time) (*Store, error) {
	if err := db.Migrate(ctx, Component, mustSub(migrationsFS, "migrations")); err != nil {
		return nil, fmt.Errorf("funeral: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	s := &Store{db: db, now: now, in: make(chan *pending, 1024), stop: make(chan struct{}), done: make(chan struct{}), maxBatch: 256}
	st, err := s.prepareAll(ctx)
	if err != nil {
		return nil, err
	}
	s.prepared = st
	go s.run()
	return s, nil
}

// SealWith makes the store seal every record body and remembered answer
// it writes (SM4-GCM under the hub's field keys: the names of deceased
// persons and their contacts are personal data) and open them on read.
// Bodies written before stay readable. Call it before the first write.
func (s *Store) SealWith(seal Sealer) { s.seal = seal }

// sealText is what the data and body columns hold for b.
func (s *Store) sealText(b []byte) (string, error) {
	if s.seal == nil || len(b) == 0 {
		return string(b), nil
	}
	ct, err := s.seal.Encrypt(string(b))
	if err != nil {
		return "", fmt.Errorf("funeral: seal: %w", err)
	}
	return ct, nil
}

// openText reverses sealText; JSON written before sealing (it starts with
// "{", "[" or is "null") is returned as it is.
func (s *Store) openText(data string) ([]byte, error) {
	if data == "" || data[0] == '{' || data[0] == '[' || data == "null" {
		return []byte(data), nil
	}
	if s.seal == nil {
		return nil, errors.New("funeral: a sealed record, and no keys to open it")
	}
	pt, err := s.seal.Decrypt(data)
	if err != nil {
		return nil, fmt.Errorf("funeral: open sealed record: %w", err)
	}
	return []byte(pt), nil
}

// SetGroupCommitWait sets how long the writer waits for more writes before
// it commits a batch; call it before the first write.
func (s *Store) SetGroupCommitWait(d time.Duration) { s.linger = d }

// Close stops the writer after the writes already queued, waiting at most
// until ctx is done.
func (s *Store) Close(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
		for _, st := range []*sql.Stmt{s.prepared.idemGet, s.prepared.idemPut, s.prepared.recGet, s.prepared.chgPut, s.prepared.recPut} {
			_ = st.Close()
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Apply submits a write and waits for its outcome. Business refusals are
// *problem.Problem errors (stale_version, version_conflict, ...).
func (s *Store) Apply(ctx context.Context, w Write) (Result, error) {
	p := &pending{w: w, ctx: ctx, out: make(chan struct{})}
	select {
	case s.in <- p:
	case <-s.stop:
		return Result{}, ErrClosed
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case <-p.out:
		return p.res, p.err
	case <-ctx.Done():
		// The write may still commit; the partner retries idempotently.
		return Result{}, ctx.Err()
	}
}

func (s *Store) run() {
	defer close(s.done)
	for {
		var first *pending
		select {
		case first = <-s.in:
		case <-s.stop:
			// Drain what is queued, then stop.
			for {
				select {
				case p := <-s.in:
					s.commit([]*pending{p})
				default:
					return
				}
			}
		}
		batch := []*pending{first}
		var linger <-chan time.Time
		if s.linger > 0 {
			linger = time.After(s.linger)
		}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case p := <-s.in:
				batch = append(batch, p)
				continue
			default:
			}
			if linger == nil {
				break
			}
			// Wait a moment for more writes: one transaction for many
			// writes costs less than many small ones.
			select {
			case p := <-s.in:
				batch = append(batch, p)
			case <-linger:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit applies a batch in one transaction; if the transaction fails as a
// whole, each write is retried alone so one bad write cannot sink others.
func (s *Store) commit(batch []*pending) {
	live := batch[:0:0]
	for _, p := range batch {
		if p.ctx.Err() != nil {
			p.err = p.ctx.Err()
			close(p.out)
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	t0 := time.Now()
	err := s.commitTx(live)
	s.batches.Add(1)
	s.writes.Add(int64(len(live)))
	s.commitTime.Add(int64(time.Since(t0)))
	if err != nil && len(live) > 1 {
		for _, p := range live {
			if e := s.commitTx([]*pending{p}); e != nil {
				p.res, p.err = Result{}, e
			}
			close(p.out)
		}
		return
	}
	for _, p := range live {
		if err != nil {
			p.res, p.err = Result{}, err
		}
		close(p.out)
	}
}

type stmts struct {
	idemGet, idemPut, recGet, chgPut, recPut *sql.Stmt
}

func (s *Store) commitTx(batch []*pending) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		p := s.prepared
		st := &stmts{idemGet: tx.StmtContext(ctx, p.idemGet), idemPut: tx.StmtContext(ctx, p.idemPut), recGet: tx.StmtContext(ctx, p.recGet),
			chgPut: tx.StmtContext(ctx, p.chgPut), recPut: tx.StmtContext(ctx, p.recPut)}
		now := s.now()
		for _, p := range batch {
			p.res, p.err = Result{}, nil
			res, err := s.apply(ctx, st, p.w, now)
			var prob *problem.Problem
			if err != nil && !errors.As(err, &prob) {
				return err
			}
			p.res, p.err = res, err
		}
		return nil
	})
}

func (s *Store) prepareAll(ctx context.Context) (*stmts, error) {
	var st stmts
	qs := []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.idemGet, `SELECT request_hash, status, etag, body FROM funeral_idempotency WHERE partner_id = ? AND idem_key = ?`},
		{&st.idemPut, `INSERT INTO funeral_idempotency (partner_id, idem_key, request_hash, status, etag, body, at) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&st.recGet, `SELECT version, revision, body_hash, deleted, data, stored_at, status, ref_at, change_seq FROM funeral_records WHERE partner_id = ? AND kind = ? AND record_id = ?`},
		{&st.chgPut, `INSERT INTO funeral_changes (partner_id, kind, record_id, revision, op, at) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`},
		{&st.recPut, `INSERT INTO funeral_records (partner_id, kind, record_id, version, revision, body_hash, data, status, ref_at, deleted, stored_at, change_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (partner_id, kind, record_id) DO UPDATE SET version = excluded.version, revision = excluded.revision,
			body_hash = excluded.body_hash, data = excluded.data, status = excluded.status, ref_at = excluded.ref_at,
			deleted = excluded.deleted, stored_at = excluded.stored_at, change_seq = excluded.change_seq`},
	}
	for _, q := range qs {
		stmt, err := s.db.PrepareContext(ctx, s.db.Rebind(q.q))
		if err != nil {
			return nil, fmt.Errorf("funeral: prepare: %w", err)
		}
		*q.dst = stmt
	}
	return &st, nil
}

func conflict(code, title, detail string) error {
	return &problem.Problem{Status: http.StatusConflict, Code: code, Title: title, Detail: detail}
}

func preconditionFailed(detail string) error {
	return &problem.Problem{Status: http.StatusPreconditionFailed, Code: "precondition_failed", Title: "Precondition failed", Detail: detail}
}

func notFound(kind, id string) error {
	p := problem.NotFound("no " + kind + " " + id)
	return &p
}

func (s *Store) apply(ctx context.Context, st *stmts, w Write, now time.Time) (Result, error) {
	if w.IdemKey != "" {
		var a IdemAnswer
		var h, body string
		err := st.idemGet.QueryRowContext(ctx, w.PartnerID, w.IdemKey).Scan(&h, &a.Status, &a.ETag, &body)
		switch {
		case err == nil:
			if h != w.ReqHash {
				return Result{}, &problem.Problem{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Title: "Idempotency key reused",
					Detail: "the key was used for a different request"}
			}
			if a.Body, err = s.openText(body); err != nil {
				return Result{}, err
			}
			return Result{Replayed: &a}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return Result{}, fmt.Errorf("funeral: read idempotency key: %w", err)
		}
	}
	old, found, err := s.scanRecord(st.recGet.QueryRowContext(ctx, w.PartnerID, w.Kind, w.ID))
	if err != nil {
		return Result{}, err
	}
	old.PartnerID, old.Kind, old.ID = w.PartnerID, w.Kind, w.ID
	if w.IfMatch != "" && w.IfMatch != "*" && (!found || w.IfMatch != old.ETag()) {
		if !found {
			return Result{}, preconditionFailed("no stored revision to match")
		}
		return Result{}, preconditionFailed("stored revision is " + old.ETag())
	}
	if w.IfMatch == "*" && !found {
		return Result{}, preconditionFailed("no stored revision to match")
	}
	rec := Record{PartnerID: w.PartnerID, Kind: w.Kind, ID: w.ID, StoredAt: now}
	op := "upsert"
	if w.Delete {
		if !found {
			return Result{}, notFound(w.Kind, w.ID)
		}
		if old.Deleted {
			return Result{Record: old.Record}, nil
		}
		rec.Version, rec.Data, rec.Deleted, rec.Status, rec.RefAt = old.Version, old.Data, true, old.Status, old.RefAt
		w.Hash = old.hash
		op = "delete"
	} else {
		if found {
			switch {
			case w.Version < old.Version:
				return Result{}, conflict("stale_version", "Stale version",
					fmt.Sprintf("stored version is %d, pushed %d", old.Version, w.Version))
			case w.Version == old.Version && !old.Deleted:
				if w.Hash == old.hash {
					return s.remember(ctx, st, w, Result{Record: old.Record}, now)
				}
				return Result{}, conflict("version_conflict", "Version reused with other content",
					fmt.Sprintf("version %d is stored with other content; push a higher version", w.Version))
			case w.Version == old.Version && old.Deleted:
				return Result{}, conflict("stale_version", "Stale version",
					fmt.Sprintf("version %d was withdrawn; push a higher version", w.Version))
			}
		}
		rec.Version, rec.Data, rec.Status, rec.RefAt = w.Version, w.Data, w.Status, w.RefAt
	}
	rec.Revision = old.Revision + 1
	if err := st.chgPut.QueryRowContext(ctx, w.PartnerID, w.Kind, w.ID, rec.Revision, op, now.UnixMilli()).Scan(&rec.Seq); err != nil {
		return Result{}, fmt.Errorf("funeral: log change: %w", err)
	}
	var refAt int64
	if !rec.RefAt.IsZero() {
		refAt = rec.RefAt.UnixMilli()
	}
	data, err := s.sealText(rec.Data)
	if err != nil {
		return Result{}, err
	}
	if _, err := st.recPut.ExecContext(ctx, w.PartnerID, w.Kind, w.ID, rec.Version, rec.Revision, w.Hash, data,
		rec.Status, refAt, boolInt(rec.Deleted), now.UnixMilli(), rec.Seq); err != nil {
		return Result{}, fmt.Errorf("funeral: store record: %w", err)
	}
	rec.StoredAt = time.UnixMilli(now.UnixMilli())
	return s.remember(ctx, st, w, Result{Record: rec, Changed: true}, now)
}

// remember stores the answer under the request's Idempotency-Key.
func (s *Store) remember(ctx context.Context, st *stmts, w Write, res Result, now time.Time) (Result, error) {
	if w.IdemKey == "" || w.Delete {
		return res, nil
	}
	raw, err := json.Marshal(res.Record)
	if err != nil {
		return Result{}, err
	}
	body, err := s.sealText(raw)
	if err != nil {
		return Result{}, err
	}
	if _, err := st.idemPut.ExecContext(ctx, w.PartnerID, w.IdemKey, w.ReqHash, http.StatusOK, res.Record.ETag(), body, now.UnixMilli()); err != nil {
		return Result{}, fmt.Errorf("funeral: store idempotency key: %w", err)
	}
	return res, nil
}

type storedRecord struct {
	Record
	hash string
}

func (s *Store) scanRecord(row *sql.Row) (storedRecord, bool, error) {
	var r storedRecord
	var deleted int
	var data string
	var storedAt, refAt int64
	err := row.Scan(&r.Version, &r.Revision, &r.hash, &deleted, &data, &storedAt, &r.Status, &refAt, &r.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return storedRecord{}, false, nil
	}
	if err != nil {
		return storedRecord{}, false, fmt.Errorf("funeral: read record: %w", err)
	}
	r.Deleted = deleted != 0
	b, err := s.openText(data)
	if err != nil {
		return storedRecord{}, false, err
	}
	r.Data = json.RawMessage(b)
	r.StoredAt = time.UnixMilli(storedAt)
	if refAt != 0 {
		r.RefAt = time.UnixMilli(refAt)
	}
	return r, true, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const recordCols = `partner_id, kind, record_id, version, revision, deleted, data, stored_at, status, ref_at, change_seq`

func (s *Store) scanRows(rows *sql.Rows) ([]Record, error) {
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var deleted int
		var data string
		var storedAt, refAt int64
		if err := rows.Scan(&r.PartnerID, &r.Kind, &r.ID, &r.Version, &r.Revision, &deleted, &data, &storedAt, &r.Status, &refAt, &r.Seq); err != nil {
			return nil, fmt.Errorf("funeral: read records: %w", err)
		}
		r.Deleted = deleted != 0
		b, err := s.openText(data)
		if err != nil {
			return nil, err
		}
		r.Data = json.RawMessage(b)
		r.StoredAt = time.UnixMilli(storedAt)
		if refAt != 0 {
			r.RefAt = time.UnixMilli(refAt)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Get returns one record (deleted ones too); ok is false when absent.
func (s *Store) Get(ctx context.Context, partnerID, kind, id string) (Record, bool, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT `+recordCols+` FROM funeral_records WHERE partner_id = ? AND kind = ? AND record_id = ?`), partnerID, kind, id)
	if err != nil {
		return Record{}, false, fmt.Errorf("funeral: get: %w", err)
	}
	recs, err := s.scanRows(rows)
	if err != nil || len(recs) == 0 {
		return Record{}, false, err
	}
	return recs[0], true, nil
}

// Query selects records for List.
type Query struct {
	// PartnerID restricts to one partner ("" for all, the bureau's view).
	PartnerID string
	// Kind is required.
	Kind string
	// AfterSeq continues after a page (exclusive).
	AfterSeq int64
	// Since keeps records stored at or after this time (zero for all).
	Since time.Time
	// IncludeDeleted keeps withdrawn records (change feeds want them).
	IncludeDeleted bool
	// Limit bounds the page (1..1000).
	Limit int
}

// List returns records in change order and the sequence to continue after
// (0 when this was the last page).
func (s *Store) List(ctx context.Context, q Query) ([]Record, int64, error) {
	if q.Limit < 1 || q.Limit > 1000 {
		q.Limit = 50
	}
	var where []string
	var args []any
	if q.PartnerID != "" {
		where, args = append(where, "partner_id = ?"), append(args, q.PartnerID)
	}
	where, args = append(where, "kind = ?", "change_seq > ?"), append(args, q.Kind, q.AfterSeq)
	if !q.Since.IsZero() {
		where, args = append(where, "stored_at >= ?"), append(args, q.Since.UnixMilli())
	}
	if !q.IncludeDeleted {
		where = append(where, "deleted = 0")
	}
	args = append(args, q.Limit+1)
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT `+recordCols+` FROM funeral_records WHERE `+strings.Join(where, " AND ")+` ORDER BY change_seq LIMIT ?`), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("funeral: list: %w", err)
	}
	recs, err := s.scanRows(rows)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(recs) > q.Limit {
		recs = recs[:q.Limit]
		next = recs[len(recs)-1].Seq
	}
	return recs, next, nil
}

// Count returns the number of live records of a kind for a partner ("" all).
func (s *Store) Count(ctx context.Context, partnerID, kind string) (int64, error) {
	q := `SELECT COUNT(*) FROM funeral_records WHERE kind = ? AND deleted = 0`
	args := []any{kind}
	if partnerID != "" {
		q += ` AND partner_id = ?`
		args = append(args, partnerID)
	}
	var n int64
	err := s.db.QueryRowContext(ctx, s.db.Rebind(q), args...).Scan(&n)
	return n, err
}
