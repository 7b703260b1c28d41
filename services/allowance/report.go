package allowance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Overview sums what the rules hold, for the console.
type Overview struct {
	// Records applied by kind; Invalidated death records.
	Records     map[string]int64
	Invalidated int64
	// Deceased and MovedOut persons whose payment is stopped.
	Deceased, MovedOut int64
	// PendingReviews of 迁入 entries.
	PendingReviews int64
	// Clawbacks open (count, fen); Backpays due or listed (count, fen).
	Clawbacks, ClawbackFen int64
	Backpays, BackpayFen   int64
	// Warnings by code; Quarantined records.
	Warnings    map[string]int64
	Quarantined int64
}

// Overview returns the current sums.
func (s *Service) Overview(ctx context.Context) (Overview, error) {
	o := Overview{Records: map[string]int64{}, Warnings: map[string]int64{}}
	rows, err := s.db.QueryContext(ctx, `SELECT kind, state, COUNT(*) FROM allow_records GROUP BY kind, state`)
	if err != nil {
		return o, err
	}
	for rows.Next() {
		var k, st string
		var n int64
		if err := rows.Scan(&k, &st, &n); err != nil {
			rows.Close()
			return o, err
		}
		if st == "invalidated" {
			o.Invalidated += n
		} else {
			o.Records[k] += n
		}
	}
	rows.Close()
	q := func(dst *int64, sql string) {
		if err == nil {
			err = s.db.QueryRowContext(ctx, sql).Scan(dst)
		}
	}
	q(&o.Deceased, `SELECT COUNT(*) FROM allow_persons WHERE status = 'deceased'`)
	q(&o.MovedOut, `SELECT COUNT(*) FROM allow_persons WHERE status = 'moved_out'`)
	q(&o.PendingReviews, `SELECT COUNT(*) FROM allow_reviews WHERE state = 'pending'`)
	q(&o.Clawbacks, `SELECT COUNT(*) FROM allow_clawbacks WHERE state IN ('open', 'listed')`)
	q(&o.ClawbackFen, `SELECT COALESCE(SUM(amount_fen), 0) FROM allow_clawbacks WHERE state IN ('open', 'listed')`)
	q(&o.Backpays, `SELECT COUNT(*) FROM allow_backpays`)
	q(&o.BackpayFen, `SELECT COALESCE(SUM(amount_fen), 0) FROM allow_backpays`)
	q(&o.Quarantined, `SELECT COUNT(*) FROM allow_quarantine`)
	if err != nil {
		return o, err
	}
	rows, err = s.db.QueryContext(ctx, `SELECT code, COUNT(*) FROM allow_warnings GROUP BY code`)
	if err != nil {
		return o, err
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var n int64
		if err := rows.Scan(&c, &n); err != nil {
			return o, err
		}
		o.Warnings[c] = n
	}
	return o, rows.Err()
}

// Item is one line of the report or the console's lists.
type Item struct {
	// Kind of line: warning, clawback, backpay, stopped, quarantined, review.
	Kind string
	// Person is the masked ID number (or the record reference of a quarantined record).
	Person string
	// Code, Detail, Month, AmountFen and State describe it.
	Code, Detail, Month, State string
	AmountFen                  int64
}

// Items lists the lines of one kind (limit of each), newest first.
func (s *Service) Items(ctx context.Context, kind string, limit int) ([]Item, error) {
	var q string
	switch kind {
	case "warning":
		q = `SELECT id_masked, code, detail, found_in, '', 0 FROM allow_warnings ORDER BY created_ms DESC LIMIT ?`
	case "clawback":
		q = `SELECT id_masked, record_id, 'paid after death, found in list ' || found_in ||
			CASE WHEN deduct_period <> '' THEN '; deduction ' || deduct_period ELSE '' END || CASE WHEN detail <> '' THEN '; ' || detail ELSE '' END,
			month, state, amount_fen FROM allow_clawbacks ORDER BY month DESC LIMIT ?`
	case "backpay":
		q = `SELECT id_masked, '', CASE WHEN period = '' THEN 'due in the next list' ELSE 'in list ' || period END, month, state, amount_fen FROM allow_backpays ORDER BY month DESC LIMIT ?`
	case "stopped":
		q = `SELECT id_masked, record_id, status, stop_month, status, 0 FROM allow_persons WHERE status <> 'active' ORDER BY updated_ms DESC LIMIT ?`
	case "quarantined":
		q = `SELECT ref, source, reason, '', record_id, 0 FROM allow_quarantine ORDER BY created_ms DESC LIMIT ?`
	default:
		return nil, fmt.Errorf("allowance: no list %q", kind)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		it := Item{Kind: kind}
		if err := rows.Scan(&it.Person, &it.Code, &it.Detail, &it.Month, &it.State, &it.AmountFen); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// WriteReport writes the screening report (UTF-8 CSV with a byte order
// mark): every warning, open claw-back, back-payment, stopped person and
// quarantined record, masked.
func (s *Service) WriteReport(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "\uFEFF")
	fmt.Fprintln(bw, "kind,person,code,detail,month,state,amount_fen")
	for _, k := range []string{"warning", "clawback", "backpay", "stopped", "quarantined"} {
		items, err := s.Items(ctx, k, 1_000_000)
		if err != nil {
			return err
		}
		for _, it := range items {
			fmt.Fprintf(bw, "%s,%s,%s,%s,%s,%s,%d\n", it.Kind, csv(it.Person), csv(it.Code), csv(it.Detail), it.Month, it.State, it.AmountFen)
		}
	}
	return bw.Flush()
}

func csv(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '"', '\n', '\r':
			return `"` + replaceQuotes(s) + `"`
		}
	}
	if len(s) > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@') {
		return "'" + s
	}
	return s
}

func replaceQuotes(s string) string {
	out := make([]byte, 0, len(s)+2)
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Recipients reads a payment list (services/disbursement.ListHeader
// format) and returns its persons masked as agreed for the push into the
// data sea (入海): masked ID number and name, the blind index as a stable
// token, district, standard and amount. Lines that are not a person are
// skipped.
func (s *Service) Recipients(r io.Reader) ([]datasea.Recipient, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []datasea.Recipient
	var f [listColumns]string
	for sc.Scan() {
		if split(sc.Text(), f[:]) != listColumns || !mask.ValidID(f[0]) {
			continue
		}
		amt, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, datasea.Recipient{Person: mask.IDNumber(f[0]), Token: s.PersonKey(f[0]), Name: mask.Name(f[1]),
			District: f[4], Standard: f[6], AmountFen: amt})
	}
	return out, sc.Err()
}
