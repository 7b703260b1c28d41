package audit

import (
	"context"
	"crypto/hmac"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Anchor is a point of the chain (a seq and its MAC) kept outside the
// database — shipped in the hub's log every day, or noted in an export's
// receipt — so that rolling the whole log back to an older state, which the
// chain alone cannot reveal, is found by CheckAnchor.
type Anchor struct {
	Seq int64  `json:"seq"`
	MAC string `json:"mac"`
}

// String renders the anchor as "seq:mac".
func (a Anchor) String() string { return strconv.FormatInt(a.Seq, 10) + ":" + a.MAC }

// ParseAnchor reads "seq:mac".
func ParseAnchor(s string) (Anchor, error) {
	seq, mac, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || len(mac) != 64 {
		return Anchor{}, fmt.Errorf("audit: anchor %q: want SEQ:MAC (64 hex characters)", s)
	}
	return Anchor{Seq: n, MAC: strings.ToLower(mac)}, nil
}

// Head returns the chain's current head as an anchor (seq 0 for an empty log).
func (l *Log) Head(ctx context.Context) (Anchor, error) {
	st, err := l.state(ctx, l.db)
	if err != nil {
		return Anchor{}, err
	}
	return Anchor{Seq: st.headSeq, MAC: st.headMAC}, nil
}

// ErrAnchor means the chain does not contain an anchor it once had.
var ErrAnchor = errors.New("audit: anchor not in the chain")

// CheckAnchor reports whether the chain still holds the anchor: the record
// at a.Seq must exist with a.MAC, or (if pruned) lie at or below the base. It
// wraps ErrAnchor when the log was rolled back, cut or rewritten past it.
func (l *Log) CheckAnchor(ctx context.Context, a Anchor) error {
	st, err := l.state(ctx, l.db)
	if err != nil {
		return err
	}
	if a.Seq > st.headSeq {
		return fmt.Errorf("%w: seq %d is after the head (%d): records were removed or the log rolled back", ErrAnchor, a.Seq, st.headSeq)
	}
	if a.Seq == st.baseSeq && st.baseSeq > 0 {
		if !hmac.Equal([]byte(st.baseMAC), []byte(a.MAC)) {
			return fmt.Errorf("%w: seq %d has another MAC at the pruning base", ErrAnchor, a.Seq)
		}
		return nil
	}
	if a.Seq < st.baseSeq {
		return nil // pruned past it under retention
	}
	var mac string
	err = l.db.QueryRowContext(ctx, l.db.Rebind(`SELECT mac FROM audit_log WHERE seq = ?`), a.Seq).Scan(&mac)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: record %d is missing", ErrAnchor, a.Seq)
	}
	if err != nil {
		return fmt.Errorf("audit: check anchor: %w", err)
	}
	if !hmac.Equal([]byte(mac), []byte(a.MAC)) {
		return fmt.Errorf("%w: record %d has another MAC: the log was rewritten", ErrAnchor, a.Seq)
	}
	return nil
}
