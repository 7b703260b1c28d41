package datasea

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/filesign"
	"github.com/shanghai-mca/mzhub/store"
)

// Recipient is one person of the recipients list pushed into the sea
// (入海), masked as agreed with the big-data center: the ID number keeps
// its region prefix and last four characters, the name its first
// character; Token is the hub's blind index of the ID number, stable from
// month to month, so the platform can follow a person without the number.
type Recipient struct {
	// Person is the masked ID number.
	Person string `json:"person"`
	// Token is the blind index (HMAC-SM3) of the ID number.
	Token string `json:"token"`
	// Name is the masked name.
	Name string `json:"name"`
	// District is the division code.
	District string `json:"district"`
	// Standard is the allowance standard.
	Standard string `json:"standard"`
	// AmountFen is the monthly amount paid, in fen.
	AmountFen int64 `json:"amount_fen"`
}

// PushBody is what POST {url}/api/v1/recipients/{period} carries.
type PushBody struct {
	// Period is the month paid, YYYY-MM.
	Period string `json:"period"`
	// Count and TotalFen sum Records.
	Count    int   `json:"count"`
	TotalFen int64 `json:"total_fen"`
	// SM3 is the hex digest of the JSON encoding of Records.
	SM3 string `json:"sm3"`
	// Signature is the base64 SM2 signature of the same bytes.
	Signature string `json:"signature"`
	// Records are the recipients.
	Records json.RawMessage `json:"records"`
}

// Receipt is the platform's answer to a push.
type Receipt struct {
	// ID is the platform's receipt number.
	ID string `json:"receipt_id"`
	// Accepted is the number of records the platform took.
	Accepted int `json:"accepted"`
}

// Signer signs the pushed list (security/filesign.Signer).
type Signer interface {
	Sign(r io.Reader) ([]byte, error)
}

// Pusher pushes recipients lists (入海) and records the receipts.
type Pusher struct {
	cfg    Config
	c      *httpx.Client
	db     *store.DB
	signer Signer
	ev     connectors.Events
	clock  clock.Clock
}

// NewPusher returns a pusher to the API at cfg.URL; deps.Store keeps the
// receipts (migrated with Migrate).
func NewPusher(cfg Config, deps connectors.Deps, signer Signer) (*Pusher, error) {
	if cfg.URL == "" || deps.Store == nil || signer == nil {
		return nil, errors.New("datasea: push: url, state store and signer required")
	}
	c, err := httpx.NewClient("datasea-push", cfg.Client)
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	return &Pusher{cfg: cfg, c: c, db: deps.Store, signer: signer, ev: deps.Events, clock: deps.Clock}, nil
}

// PushState is the recorded state of a period's push.
type PushState struct {
	// Period pushed; State is sending (in flight or failed) or received.
	Period, State string
	// Records and TotalFen pushed; Digest of the records (SM3 hex).
	Records, TotalFen int64
	Digest            string
	// Receipt is the platform's receipt number; Detail the last error.
	Receipt, Detail string
}

// Pushed returns the recorded push of a period (ok false when none).
func Pushed(ctx context.Context, db *store.DB, period string) (PushState, bool, error) {
	s := PushState{Period: period}
	err := db.QueryRowContext(ctx, db.Rebind(`SELECT state, records, total_fen, digest, receipt, detail FROM datasea_pushes WHERE period = ?`), period).
		Scan(&s.State, &s.Records, &s.TotalFen, &s.Digest, &s.Receipt, &s.Detail)
	if errors.Is(err, sql.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("datasea: push of %s: %w", period, err)
	}
	return s, true, nil
}

// Push sends the recipients of period once: a period whose receipt is
// recorded is not sent again; a push in doubt (the hub died waiting) is
// sent again with the same Idempotency-Key (recipients/PERIOD), which the
// platform answers with its first receipt.
func (p *Pusher) Push(ctx context.Context, period string, recs []Recipient) (PushState, error) {
	if st, ok, err := Pushed(ctx, p.db, period); err != nil || (ok && st.State == "received") {
		return st, err
	}
	data, err := json.Marshal(recs)
	if err != nil {
		return PushState{}, err
	}
	digest, _, err := filesign.DigestSM3(bytes.NewReader(data))
	if err != nil {
		return PushState{}, err
	}
	sig, err := p.signer.Sign(bytes.NewReader(data))
	if err != nil {
		return PushState{}, fmt.Errorf("datasea: sign recipients %s: %w", period, err)
	}
	var total int64
	for _, r := range recs {
		total += r.AmountFen
	}
	st := PushState{Period: period, State: "sending", Records: int64(len(recs)), TotalFen: total, Digest: digest}
	if err := p.record(ctx, st); err != nil {
		return st, err
	}
	body, err := json.Marshal(PushBody{Period: period, Count: len(recs), TotalFen: total, SM3: digest,
		Signature: base64.StdEncoding.EncodeToString(sig), Records: data})
	if err != nil {
		return st, err
	}
	start := p.clock.Now()
	ev := monitor.Event{Partner: Partner, Flow: "recipients-push", Direction: monitor.Outbound, Channel: "http",
		Type: monitor.Sent, Status: monitor.OK, BatchID: "recipients-" + period, Records: int64(len(recs)), AmountFen: total,
		Digest: digest, Bytes: int64(len(body)), Component: "datasea"}
	rc, err := p.send(ctx, period, body, len(recs))
	ev.Time, ev.Duration = p.clock.Now(), p.clock.Now().Sub(start)
	if err != nil {
		st.Detail = err.Error()
		_ = p.record(ctx, st)
		ev.Type, ev.Status, ev.ErrorMessage = monitor.Failed, monitor.Error, err.Error()
		p.emit(ev)
		return st, err
	}
	st.State, st.Receipt, st.Detail = "received", rc.ID, ""
	if err := p.record(ctx, st); err != nil {
		return st, err
	}
	ev.PartnerRef = rc.ID
	p.emit(ev)
	return st, nil
}

func (p *Pusher) send(ctx context.Context, period string, body []byte, n int) (Receipt, error) {
	u := strings.TrimRight(p.cfg.URL, "/") + "/api/v1/recipients/" + period
	resp, err := p.c.Do(ctx, httpx.Request{Method: "POST", URL: u, Body: body,
		Headers: map[string]string{"Content-Type": "application/json", "Idempotency-Key": "recipients/" + period}})
	if err != nil {
		return Receipt{}, err
	}
	var rc Receipt
	if err := json.Unmarshal(resp.Body(), &rc); err != nil || resp.StatusCode() != 200 && resp.StatusCode() != 201 {
		return Receipt{}, fmt.Errorf("%w: push %s: status %d", ErrBadAnswer, period, resp.StatusCode())
	}
	if rc.ID == "" {
		return Receipt{}, fmt.Errorf("%w: push %s", ErrNoReceipt, period)
	}
	if rc.Accepted != n {
		return Receipt{}, fmt.Errorf("%w: push %s: platform accepted %d of %d records (receipt %s)", ErrBadAnswer, period, rc.Accepted, n, rc.ID)
	}
	return rc, nil
}

func (p *Pusher) record(ctx context.Context, st PushState) error {
	_, err := p.db.ExecContext(ctx, p.db.Rebind(`INSERT INTO datasea_pushes (period, records, total_fen, digest, state, receipt, detail, pushed_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (period) DO UPDATE SET records = excluded.records, total_fen = excluded.total_fen,
		digest = excluded.digest, state = excluded.state, receipt = excluded.receipt, detail = excluded.detail, pushed_ms = excluded.pushed_ms`),
		st.Period, st.Records, st.TotalFen, st.Digest, st.State, st.Receipt, st.Detail, p.clock.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("datasea: record push %s: %w", st.Period, err)
	}
	return nil
}

func (p *Pusher) emit(ev monitor.Event) {
	if p.ev != nil {
		p.ev.Emit(ev)
	}
}
