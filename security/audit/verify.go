package audit

import (
	"bufio"
	"context"
	"crypto/hmac"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Kinds of chain break.
const (
	// KindEdited: a record's content no longer matches its MAC.
	KindEdited = "edited"
	// KindRemoved: one or more records are missing before Seq (or at the end).
	KindRemoved = "removed"
	// KindInserted: the record at Seq was not written by the hub.
	KindInserted = "inserted"
)

// Break is the first place the chain does not hold.
type Break struct {
	// Seq is the sequence number of the first bad record (for a removal at
	// the end, the seq after the last record present).
	Seq int64 `json:"seq"`
	// Kind is KindEdited, KindRemoved or KindInserted.
	Kind string `json:"kind"`
	// Detail explains the finding.
	Detail string `json:"detail"`
}

// Report is the result of a verification.
type Report struct {
	// Checked counts the records examined.
	Checked int64 `json:"checked"`
	// FirstSeq and LastSeq are the first and last seq examined.
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// Break is the first break found, nil when the chain holds.
	Break *Break `json:"break,omitempty"`
}

// OK reports whether the chain holds.
func (r Report) OK() bool { return r.Break == nil }

// String renders the report for the CLI.
func (r Report) String() string {
	if r.Break == nil {
		if r.Checked == 0 {
			return "audit chain OK: no records"
		}
		return fmt.Sprintf("audit chain OK: %d records (seq %d to %d)", r.Checked, r.FirstSeq, r.LastSeq)
	}
	return fmt.Sprintf("audit chain BROKEN at seq %d: %s: %s (%d records checked before it)", r.Break.Seq, r.Break.Kind, r.Break.Detail, r.Checked)
}

// chain walks entries in seq order with one entry of lookahead, because
// telling an inserted record from an edited one needs the next link.
type chain struct {
	key     []byte
	prevMAC string
	expect  int64
	pending *Entry
	rep     Report
}

func newChain(key []byte, baseSeq int64, baseMAC string) *chain {
	return &chain{key: key, prevMAC: baseMAC, expect: baseSeq + 1}
}

// feed adds the next entry; it returns false once a break is found.
func (c *chain) feed(e Entry) bool {
	if c.pending != nil {
		np := e.PrevMAC
		if !c.check(*c.pending, &np) {
			return false
		}
	}
	c.pending = &e
	return true
}

// finish checks the last entry; nextPrev is what should follow it (the
// head's MAC) or nil when unknown (an export).
func (c *chain) finish(nextPrev *string) bool {
	if c.pending == nil {
		return true
	}
	e := *c.pending
	c.pending = nil
	return c.check(e, nextPrev)
}

func (c *chain) check(e Entry, nextPrev *string) bool {
	fail := func(seq int64, kind, detail string) bool {
		c.rep.Break = &Break{Seq: seq, Kind: kind, Detail: detail}
		return false
	}
	if e.Seq > c.expect {
		return fail(c.expect, KindRemoved, fmt.Sprintf("records %d to %d are missing", c.expect, e.Seq-1))
	}
	if e.Seq < c.expect {
		return fail(e.Seq, KindInserted, fmt.Sprintf("seq %d appears again after seq %d", e.Seq, c.expect-1))
	}
	valid := hmac.Equal([]byte(macOf(c.key, &e)), []byte(e.MAC))
	linked := e.PrevMAC == c.prevMAC
	// An edited record is still what the next one links to; an inserted one
	// is skipped by the next link (a forger may copy the previous MAC into
	// it, which no genuine record ever has).
	nextLinksHere := nextPrev != nil && *nextPrev == e.MAC && e.MAC != c.prevMAC
	nextSkips := nextPrev != nil && *nextPrev == c.prevMAC
	switch {
	case valid && !linked:
		return fail(e.Seq, KindRemoved, "the record does not follow the one before it: records were removed before it and the rest renumbered")
	case !valid && nextSkips && !nextLinksHere:
		return fail(e.Seq, KindInserted, "the record has no valid MAC and the next record links over it to the one before")
	case !valid:
		return fail(e.Seq, KindEdited, "the record's content does not match its MAC")
	}
	if c.rep.Checked == 0 {
		c.rep.FirstSeq = e.Seq
	}
	c.rep.Checked++
	c.rep.LastSeq = e.Seq
	c.prevMAC = e.MAC
	c.expect = e.Seq + 1
	return true
}

type state struct {
	headSeq          int64
	headMAC, headTag string
	baseSeq          int64
	baseMAC, baseTag string
}

func (l *Log) state(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (state, error) {
	var s state
	err := q.QueryRowContext(ctx, `SELECT head_seq, head_mac, head_tag, base_seq, base_mac, base_tag FROM audit_state WHERE id = 1`).
		Scan(&s.headSeq, &s.headMAC, &s.headTag, &s.baseSeq, &s.baseMAC, &s.baseTag)
	if err != nil {
		return s, fmt.Errorf("audit: read state: %w", err)
	}
	return s, nil
}

// Verify walks the whole chain from its base (the start, or where retention
// pruning left it) to its head and reports the first edited, removed or
// inserted record. An error means the walk itself failed; a broken chain is
// a Report with a Break.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	st, err := l.state(ctx, l.db)
	if err != nil {
		return Report{}, err
	}
	if st.baseSeq > 0 && !hmac.Equal([]byte(tag(l.key, "base", st.baseSeq, st.baseMAC)), []byte(st.baseTag)) {
		return Report{Break: &Break{Seq: st.baseSeq + 1, Kind: KindRemoved, Detail: "the chain's start marker was altered (records removed from the start?)"}}, nil
	}
	if st.headSeq > 0 && !hmac.Equal([]byte(tag(l.key, "head", st.headSeq, st.headMAC)), []byte(st.headTag)) {
		return Report{Break: &Break{Seq: st.headSeq, Kind: KindEdited, Detail: "the chain's head marker was altered"}}, nil
	}
	c := newChain(l.key, st.baseSeq, st.baseMAC)
	rows, err := l.db.QueryContext(ctx, `SELECT `+columns+` FROM audit_log ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return Report{}, fmt.Errorf("audit: verify: %w", err)
		}
		if !c.feed(e) {
			return c.rep, nil
		}
	}
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	headMAC := st.headMAC
	if !c.finish(&headMAC) {
		return c.rep, nil
	}
	if c.expect-1 != st.headSeq || c.prevMAC != st.headMAC {
		if c.expect-1 < st.headSeq {
			c.rep.Break = &Break{Seq: c.expect, Kind: KindRemoved, Detail: fmt.Sprintf("records %d to %d at the end are missing", c.expect, st.headSeq)}
		} else {
			c.rep.Break = &Break{Seq: st.headSeq + 1, Kind: KindInserted, Detail: fmt.Sprintf("records after seq %d were not written by the hub", st.headSeq)}
		}
	}
	return c.rep, nil
}

// exportHeader is the first line of an export file.
type exportHeader struct {
	Format     string    `json:"format"`
	ExportedAt time.Time `json:"exported_at"`
	From       time.Time `json:"from,omitzero"`
	To         time.Time `json:"to,omitzero"`
}

// ExportFormat names the export file format (its first line).
const ExportFormat = "mzhub-audit-export/1"

// Export writes the whole chain to w as JSON lines (a header line, then one
// entry per line with its MACs) and returns the number of entries written.
func (l *Log) Export(ctx context.Context, w io.Writer) (int64, error) {
	return l.ExportRange(ctx, w, time.Time{}, time.Time{})
}

// ExportRange writes the entries with from <= time < to (zero bounds are
// open) in seq order. The file can be checked off-host with VerifyExport.
func (l *Log) ExportRange(ctx context.Context, w io.Writer, from, to time.Time) (int64, error) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(exportHeader{Format: ExportFormat, ExportedAt: l.clock.Now().UTC(), From: from, To: to}); err != nil {
		return 0, fmt.Errorf("audit: export: %w", err)
	}
	wh, args := Filter{From: from, To: to}.where()
	rows, err := l.db.QueryContext(ctx, l.db.Rebind(`SELECT `+columns+` FROM audit_log`+wh+` ORDER BY seq`), args...)
	if err != nil {
		return 0, fmt.Errorf("audit: export: %w", err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		e.Time = e.Time.UTC()
		if err := enc.Encode(e); err != nil {
			return n, fmt.Errorf("audit: export: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("audit: export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("audit: export: %w", err)
	}
	return n, nil
}

// VerifyExport checks an export file with the audit key: every entry's MAC
// and every link after the first. The first entry's own link cannot be
// checked (its predecessor is not in the file).
func VerifyExport(r io.Reader, key []byte) (Report, error) {
	dec := json.NewDecoder(r)
	var h exportHeader
	if err := dec.Decode(&h); err != nil {
		return Report{}, fmt.Errorf("audit: export header: %w", err)
	}
	if h.Format != ExportFormat {
		return Report{}, fmt.Errorf("audit: export format %q, want %q", h.Format, ExportFormat)
	}
	var c *chain
	for {
		var e Entry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("audit: export entry: %w", err)
		}
		e.Time = time.UnixMilli(e.Time.UnixMilli())
		if c == nil {
			c = newChain(key, e.Seq-1, e.PrevMAC)
		}
		if !c.feed(e) {
			return c.rep, nil
		}
	}
	if c == nil {
		return Report{}, nil
	}
	c.finish(nil)
	return c.rep, nil
}
