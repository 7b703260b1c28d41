package hrsssim

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/hrss"
)

// Platform simulates the exchange-sharing platform's side of the
// front-end tables (前置机库表交换, docs/verification.md): it takes the
// request rows the hub wrote into the request table, answers each from the
// same synthetic population as the WebService (Respond), and writes one
// answer row per call into the answer table, one load batch (load_seq) per
// transaction. Faults: answers held back (late) until Release, a malformed
// answer row, an answer row written twice.
type Platform struct {
	db       *sql.DB
	requests string
	answers  string
	// AsOf is the date of the data the platform answers with.
	AsOf time.Time

	mu        sync.Mutex
	hold      map[string]bool
	malformed int
	duplicate int
	held      []answerRow
	release   bool
	written   int
}

// answerRow is one row of the answer table.
type answerRow struct {
	key, ref, asOf, persons string
}

// NewPlatform returns a platform over the front-end database db with the
// request and answer tables of docs/examples/routes/verification-hrss-frontend.sql
// (e.g. qzj.hrss_hdsq and qzj.hrss_hdjg).
func NewPlatform(db *sql.DB, requests, answers string) *Platform {
	return &Platform{db: db, requests: requests, answers: answers, AsOf: time.Now()}
}

// Hold holds back the answers to the requests asking about any of the
// persons (ID numbers) until Release: late answers.
func (p *Platform) Hold(idNumbers ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold == nil {
		p.hold = map[string]bool{}
	}
	for _, k := range idNumbers {
		p.hold[k] = true
	}
}

// MalformedNext writes the next n answers with an amount that is not yuan.
func (p *Platform) MalformedNext(n int) { p.mu.Lock(); p.malformed += n; p.mu.Unlock() }

// DuplicateNext writes the next n answers twice (two rows, one call).
func (p *Platform) DuplicateNext(n int) { p.mu.Lock(); p.duplicate += n; p.mu.Unlock() }

// Release lets the held answers be written at the next Step.
func (p *Platform) Release() (n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold, p.release = nil, true
	return len(p.held)
}

// Written is the number of answer rows written so far.
func (p *Platform) Written() int { p.mu.Lock(); defer p.mu.Unlock(); return p.written }

// Step takes the untaken request rows and writes their answers (and any
// released held ones) in one transaction; it returns the rows written.
func (p *Platform) Step(ctx context.Context) (int, error) {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, `SELECT id, request_key, persons FROM `+p.requests+
		` WHERE platform_taken_at IS NULL ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return 0, fmt.Errorf("hrss platform: read %s: %w", p.requests, err)
	}
	type req struct {
		id           int64
		key, persons string
	}
	var reqs []req
	for rows.Next() {
		var r req
		if err := rows.Scan(&r.id, &r.key, &r.persons); err != nil {
			rows.Close()
			return 0, err
		}
		reqs = append(reqs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	var out []answerRow
	if p.release {
		out, p.held, p.release = p.held, nil, false
	}
	var ids []int64
	for _, r := range reqs {
		ids = append(ids, r.id)
		var q hrss.Request
		if err := json.Unmarshal([]byte(r.persons), &q.Persons); err != nil {
			continue // not a request the platform can read: never answered
		}
		p.written++
		a := answerRow{key: r.key, ref: fmt.Sprintf("HDJG%06d", p.written), asOf: p.AsOf.Format("2006-01-02")}
		b, _ := json.Marshal(Respond(q, p.AsOf, a.ref, false, false).Persons)
		a.persons = string(b)
		if p.malformed > 0 {
			p.malformed--
			a.persons = `[{"zjhm":"` + q.Persons[0].Zjhm + `","pension":[{"je":"12.345","ny":"` + p.AsOf.AddDate(0, -1, 0).Format("200601") + `"}]}]`
		}
		if slices.ContainsFunc(q.Persons, func(x hrss.Person) bool { return p.hold[x.Zjhm] }) {
			p.held = append(p.held, a)
			continue
		}
		out = append(out, a)
		if p.duplicate > 0 {
			p.duplicate--
			out = append(out, a)
		}
	}
	p.mu.Unlock()
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE `+p.requests+` SET platform_taken_at = CURRENT_TIMESTAMP WHERE id = ANY($1)`, ids); err != nil {
			return 0, err
		}
	}
	if len(out) == 0 {
		return 0, tx.Commit()
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(load_seq), 0) + 1 FROM `+p.answers).Scan(&seq); err != nil {
		return 0, err
	}
	for _, a := range out {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+p.answers+` (load_seq, request_key, ref, as_of, persons) VALUES ($1, $2, $3, $4, $5)`,
			seq, a.key, a.ref, a.asOf, a.persons); err != nil {
			return 0, fmt.Errorf("hrss platform: write %s: %w", p.answers, err)
		}
	}
	return len(out), tx.Commit()
}

// Run steps every interval until ctx is done (errors are retried at the
// next step).
func (p *Platform) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, _ = p.Step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
