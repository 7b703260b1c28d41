package portal

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// StatsFilter narrows the statistics; empty fields match everything.
type StatsFilter struct {
	// Item is an item code.
	Item string `json:"item,omitempty"`
	// Month is YYYY-MM (the application's submission month, the case's push month).
	Month string `json:"month,omitempty"`
	// Division is a district's division code.
	Division string `json:"division,omitempty"`
}

// ApplicationCount counts applications of one item, stage, district, month and channel.
type ApplicationCount struct {
	Item     string `json:"item"`
	Stage    string `json:"stage"`
	Result   string `json:"result"`
	Division string `json:"division"`
	Month    string `json:"month"`
	Channel  string `json:"channel"`
	Count    int64  `json:"count"`
}

// MianshenCount is one item's 免申即享 figures for a district and month.
type MianshenCount struct {
	Item     string `json:"item"`
	Division string `json:"division"`
	Month    string `json:"month"`
	// Pushed counts persons pushed (delivered to the portal).
	Pushed int64 `json:"pushed"`
	// Cases counts cases handed back.
	Cases int64 `json:"cases"`
	// Confirmed and Refused count the department's decisions; Review the cases waiting for an operator.
	Confirmed int64 `json:"confirmed"`
	Refused   int64 `json:"refused"`
	Review    int64 `json:"review"`
	// Paid counts payouts reported to the portal; Unpaid the confirmed cases closed without a payment.
	Paid   int64 `json:"paid"`
	Unpaid int64 `json:"unpaid"`
	// PaidFen totals the payouts reported.
	PaidFen int64 `json:"paid_fen"`
	// ConfirmationRate is Confirmed/Cases; PayoutRate Paid/Confirmed (0 when the divisor is 0).
	ConfirmationRate float64 `json:"confirmation_rate"`
	PayoutRate       float64 `json:"payout_rate"`
}

// OutboxCount counts the outbox rows of one kind and state.
type OutboxCount struct {
	Kind  string `json:"kind"`
	State string `json:"state"`
	Count int64  `json:"count"`
}

// Stats are the figures the console and the JSON API show.
type Stats struct {
	Filter       StatsFilter        `json:"filter"`
	Applications []ApplicationCount `json:"applications"`
	Mianshen     []MianshenCount    `json:"mianshen"`
	Outbox       []OutboxCount      `json:"outbox"`
	// Refused counts records refused (pages, files).
	Refused int64 `json:"refused"`
}

func where(f StatsFilter, itemCol, monthCol string) (string, []any) {
	var conds []string
	var args []any
	if f.Item != "" {
		conds, args = append(conds, itemCol+" = ?"), append(args, f.Item)
	}
	if f.Month != "" {
		conds, args = append(conds, monthCol+" = ?"), append(args, f.Month)
	}
	if f.Division != "" {
		conds, args = append(conds, "division = ?"), append(args, f.Division)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Stats computes the statistics per item, stage, district and month.
func (s *Service) Stats(ctx context.Context, f StatsFilter) (Stats, error) {
	st := Stats{Filter: f, Applications: []ApplicationCount{}, Mianshen: []MianshenCount{}, Outbox: []OutboxCount{}}
	w, args := where(f, "item_code", "month")
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT item_code, stage, result, division, month, channel, COUNT(*) FROM portal_applications`+w+`
		GROUP BY item_code, stage, result, division, month, channel ORDER BY item_code, month, division, stage, result, channel`), args...)
	if err != nil {
		return st, fmt.Errorf("portal: stats: %w", err)
	}
	for rows.Next() {
		var a ApplicationCount
		if err := rows.Scan(&a.Item, &a.Stage, &a.Result, &a.Division, &a.Month, &a.Channel, &a.Count); err != nil {
			rows.Close()
			return st, err
		}
		st.Applications = append(st.Applications, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	type key struct{ item, div, month string }
	ms := map[key]*MianshenCount{}
	get := func(k key) *MianshenCount {
		if m, ok := ms[k]; ok {
			return m
		}
		m := &MianshenCount{Item: k.item, Division: k.div, Month: k.month}
		ms[k] = m
		return m
	}
	w, args = where(f, "e.item_code", "e.month")
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT e.item_code, e.division, e.month, COUNT(*) FROM portal_eligible e
		JOIN portal_outbox o ON o.kind = 'push' AND o.ref = e.pushed_batch AND o.state = 'delivered'`+strings.Replace(w, "division", "e.division", 1)+`
		GROUP BY e.item_code, e.division, e.month`), args...)
	if err != nil {
		return st, fmt.Errorf("portal: stats: %w", err)
	}
	for rows.Next() {
		var k key
		var n int64
		if err := rows.Scan(&k.item, &k.div, &k.month, &n); err != nil {
			rows.Close()
			return st, err
		}
		get(k).Pushed = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	w, args = where(f, "item_code", "month")
	rows, err = s.db.QueryContext(ctx, s.db.Rebind(`SELECT item_code, division, month, decision, payout_state, COUNT(*), SUM(paid_fen) FROM portal_cases`+w+`
		GROUP BY item_code, division, month, decision, payout_state`), args...)
	if err != nil {
		return st, fmt.Errorf("portal: stats: %w", err)
	}
	for rows.Next() {
		var k key
		var decision, payout string
		var n, fen int64
		if err := rows.Scan(&k.item, &k.div, &k.month, &decision, &payout, &n, &fen); err != nil {
			rows.Close()
			return st, err
		}
		m := get(k)
		m.Cases += n
		switch decision {
		case "confirm":
			m.Confirmed += n
		case "refuse":
			m.Refused += n
		case decisionReview:
			m.Review += n
		}
		switch payout {
		case "reported":
			m.Paid += n
			m.PaidFen += fen
		case "none":
			m.Unpaid += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	for _, m := range ms {
		if m.Cases > 0 {
			m.ConfirmationRate = float64(m.Confirmed) / float64(m.Cases)
		}
		if m.Confirmed > 0 {
			m.PayoutRate = float64(m.Paid) / float64(m.Confirmed)
		}
		st.Mianshen = append(st.Mianshen, *m)
	}
	sort.Slice(st.Mianshen, func(i, j int) bool {
		a, b := st.Mianshen[i], st.Mianshen[j]
		if a.Item != b.Item {
			return a.Item < b.Item
		}
		if a.Month != b.Month {
			return a.Month < b.Month
		}
		return a.Division < b.Division
	})
	rows, err = s.db.QueryContext(ctx, `SELECT kind, state, COUNT(*) FROM portal_outbox GROUP BY kind, state ORDER BY kind, state`)
	if err != nil {
		return st, fmt.Errorf("portal: stats: %w", err)
	}
	for rows.Next() {
		var o OutboxCount
		if err := rows.Scan(&o.Kind, &o.State, &o.Count); err != nil {
			rows.Close()
			return st, err
		}
		st.Outbox = append(st.Outbox, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM portal_refused`).Scan(&st.Refused); err != nil {
		return st, fmt.Errorf("portal: stats: %w", err)
	}
	return st, nil
}

// RefusedRecord is a record the hub refused.
type RefusedRecord struct {
	Source string `json:"source"`
	Ref    string `json:"ref"`
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
	AtMs   int64  `json:"at_ms"`
}

// Refusals lists the latest refused records, newest first.
func (s *Service) Refusals(ctx context.Context, limit int) ([]RefusedRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT source, ref, line, reason, at FROM portal_refused ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("portal: refusals: %w", err)
	}
	defer rows.Close()
	out := []RefusedRecord{}
	for rows.Next() {
		var r RefusedRecord
		if err := rows.Scan(&r.Source, &r.Ref, &r.Line, &r.Reason, &r.AtMs); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
