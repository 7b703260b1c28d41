package audit

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/shanghai-mca/mzhub/store"
)

// AppendTx adds rs to the chain inside tx, the caller's transaction, in
// order, and returns their sequence numbers. It is Append for a group
// commit: the records become durable, chained to the head as it is inside
// tx, when the caller commits; if the caller rolls back, none of them is
// written and the chain is unchanged. On SQLite the transaction holds the
// write lock (BEGIN IMMEDIATE), on PostgreSQL the head row is locked (FOR
// UPDATE), so appends from other transactions and replicas queue behind it
// and the chain stays gapless.
//
// AppendTx does not take Log's in-process lock: the database serialises
// the head. Object, Detail and Actor are masked as Append masks them.
func (l *Log) AppendTx(ctx context.Context, tx *sql.Tx, rs []Record) ([]int64, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	q := `SELECT head_seq, head_mac FROM audit_state WHERE id = 1`
	if l.db.Dialect() == store.Postgres {
		q += ` FOR UPDATE`
	}
	var headSeq int64
	var headMAC string
	if err := tx.QueryRowContext(ctx, q).Scan(&headSeq, &headMAC); err != nil {
		return nil, fmt.Errorf("audit: append batch: read head: %w", err)
	}
	seqs := make([]int64, len(rs))
	now := l.clock.Now()
	args := make([]any, 0, 11*min(len(rs), rowsPerInsert))
	err := l.rows.Run(ctx, tx, len(rs), func(off, size int) []any {
		args = args[:0]
		for i, r := range rs[off : off+size] {
			e := Entry{Seq: headSeq + 1, Record: r.cleaned(now), PrevMAC: headMAC}
			e.MAC = macOf(l.key, &e)
			args = append(args, e.Seq, e.Time.UnixMilli(), e.Actor, e.SourceIP, e.Action, e.Object, e.Outcome, e.RequestID, e.Detail, e.PrevMAC, e.MAC)
			headSeq, headMAC, seqs[off+i] = e.Seq, e.MAC, e.Seq
		}
		return args
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("audit: append batch: insert: %w", err)
	}
	if _, err := tx.ExecContext(ctx, l.db.Rebind(`UPDATE audit_state SET head_seq = ?, head_mac = ?, head_tag = ? WHERE id = 1`),
		headSeq, headMAC, tag(l.key, "head", headSeq, headMAC)); err != nil {
		return nil, fmt.Errorf("audit: append batch: update head: %w", err)
	}
	return seqs, nil
}

// rowsPerInsert is the most audit records one INSERT of a batch writes
// (store.MultiRow: one statement for many rows instead of one each; 11
// parameters a row; small, since every size up to it stays prepared on
// each connection that ran it).
const rowsPerInsert = 16

// insertRows is the INSERT of n audit records.
func insertRows(n int) string {
	return `INSERT INTO audit_log (seq, at_ms, actor, source_ip, action, object, outcome, request_id, detail, prev_mac, mac) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?),", n), ",")
}
