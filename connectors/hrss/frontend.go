package hrss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// The front-end table alternative (前置机库表交换, docs/verification.md):
// the verification calls to social security are written as rows of a
// request table on the bureau's front-end database (route kind dbtable,
// sink), the exchange-sharing platform writes each answer as one row of an
// answer table, and a dbtable source hands the rows to the kind below,
// which reads them with the WebService's own normalisation (Response.Answer)
// and answers the verification service on reply_to.

// FrontEndKind is the connector kind that reads the answer rows.
const FrontEndKind = "hrss-frontend"

// Columns of an answer row the platform writes (docs/verification.md has
// the DDL); the dbtable source carries them in the message body.
const (
	// ColRequestKey is the call's key (request:hrss), copied from the
	// request row's request_key: the answer's correlation.
	ColRequestKey = "request_key"
	// ColRef is the platform's reference of the answer.
	ColRef = "ref"
	// ColAsOf is the date of the data (YYYY-MM-DD; a DATE column).
	ColAsOf = "as_of"
	// ColPersons is the answer's persons as a JSON array of PersonAnswer
	// (zjhm, employment[dwmc, jfjs, ny], pension[je, ny], nursing_fee,
	// contribution; amounts as strings in yuan, months YYYYMM).
	ColPersons = "persons"
)

// ErrNoCall is an answer row that names no social-security call: it cannot
// be correlated and is dead-lettered with the reason.
var ErrNoCall = errors.New("hrss: answer row names no social-security call")

// Row is an answer row of the platform's front-end answer table, as the
// dbtable source hands it over (a JSON object of its columns).
type Row struct {
	// RequestKey is the call's key (request:hrss).
	RequestKey string `json:"request_key"`
	// Ref is the platform's reference.
	Ref any `json:"ref"`
	// AsOf is the date of the data.
	AsOf any `json:"as_of"`
	// Persons is the JSON array of the persons answered.
	Persons any `json:"persons"`
}

// ParseRow reads an answer row: the call it answers and the answer,
// checked and normalised as the WebService's (amounts in fen, months, every
// person named). A row that names no hrss call is ErrNoCall; a row whose
// answer cannot be read returns the call with an error wrapping
// household.ErrBadAnswer and the reason.
func ParseRow(body []byte) (call string, a household.Answer, err error) {
	var row Row
	if err := json.Unmarshal(body, &row); err != nil {
		return "", household.Answer{}, fmt.Errorf("%w: not a JSON object: %w", ErrNoCall, err)
	}
	call = strings.TrimSpace(row.RequestKey)
	if call == "" || !strings.HasSuffix(call, ":"+PartnerID) {
		return "", household.Answer{}, fmt.Errorf("%w: request_key %q", ErrNoCall, mask.Text(call))
	}
	r := Response{Ref: cell(row.Ref), AsOf: cell(row.AsOf)}
	if len(r.AsOf) > 10 && r.AsOf[10] == 'T' {
		r.AsOf = r.AsOf[:10] // a DATE column, handed over as a timestamp at midnight
	}
	switch p := row.Persons.(type) {
	case nil:
		return call, household.Answer{}, fmt.Errorf("hrss: %w: persons missing", household.ErrBadAnswer)
	case string:
		if err := json.Unmarshal([]byte(p), &r.Persons); err != nil {
			return call, household.Answer{}, fmt.Errorf("hrss: %w: persons: %w", household.ErrBadAnswer, err)
		}
	default: // a JSON/JSONB column the driver handed over decoded
		b, _ := json.Marshal(p)
		if err := json.Unmarshal(b, &r.Persons); err != nil {
			return call, household.Answer{}, fmt.Errorf("hrss: %w: persons: %w", household.ErrBadAnswer, err)
		}
	}
	a, err = r.Answer()
	return call, a, err
}

// cell renders a column value as text (NULL is "").
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(x)
	default:
		return fmt.Sprint(x)
	}
}

// FrontEndSpec is the "hrss-frontend" connector kind: a sink that answers
// (routes.Replier, routes.AnswerChecker) each answer row handed over by a
// dbtable source with the verification answer (household.Reply) of the
// call the row names, as the SOAP path answers on reply_to. It does no I/O.
func FrontEndSpec() connectors.Spec {
	return connectors.Spec{
		Name: FrontEndKind,
		Summary: "social security (人社) through the exchange-sharing platform's front-end tables: reads each answer row a dbtable source hands over " +
			"(request_key, ref, as_of, persons) with the WebService's checks and normalisation, and answers on reply_to as the SOAP path does " +
			"(household-call: the row's request_key); a row that cannot be read rejects its call with the reason, a row naming no hrss call is dead-lettered",
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return &FrontEndConfig{} },
			New: func(cfg any, _ connectors.Deps) (connectors.Sink, error) {
				if _, ok := cfg.(*FrontEndConfig); !ok {
					return nil, fmt.Errorf("%s sink: config is %T, want *hrss.FrontEndConfig", FrontEndKind, cfg)
				}
				return FrontEnd{}, nil
			},
		},
	}
}

// FrontEndConfig configures the hrss-frontend sink: it has no settings
// (the front-end database is the route's dbtable source's).
type FrontEndConfig struct{}

// FrontEnd reads the platform's answer rows (FrontEndSpec).
type FrontEnd struct{}

var _ connectors.Sink = FrontEnd{}

// Send reads the row; the answer is dropped (routes use reply_to).
func (f FrontEnd) Send(ctx context.Context, msg bus.Message) error {
	_, err := f.Reply(ctx, msg)
	return err
}

// Reply returns the verification answer of the row: a household.Reply
// (found; the answer, or BadAnswer with the masked reason) with the
// headers the verification service correlates by (household-call: the
// row's request_key). A row naming no hrss call is a permanent failure.
func (FrontEnd) Reply(_ context.Context, msg bus.Message) (bus.Message, error) {
	call, a, err := ParseRow(msg.Body)
	if errors.Is(err, ErrNoCall) {
		return bus.Message{}, connectors.Permanent(err)
	}
	r := household.Reply{Found: true, Answer: &a}
	if err != nil {
		r = household.Reply{Found: true, BadAnswer: mask.Text(err.Error())}
	}
	b, jerr := json.Marshal(r)
	if jerr != nil {
		return bus.Message{}, connectors.Permanent(jerr)
	}
	return bus.Message{Body: b, Headers: map[string]string{"Content-Type": "application/json",
		household.HeaderCall: call, household.HeaderPartner: PartnerID, household.HeaderOp: household.OpAsk}}, nil
}

// Answer is Reply: the row is the answer, read again the same way (a
// delivery in doubt re-reads it; nothing is asked).
func (f FrontEnd) Answer(ctx context.Context, msg bus.Message) (bus.Message, bool, error) {
	m, err := f.Reply(ctx, msg)
	return m, err == nil, err
}

// Endpoint describes the sink for dead letters and events.
func (FrontEnd) Endpoint() string { return "social security answer rows (front-end tables)" }

// Planner is social security for the verification service's planning when
// it is reached through the front-end tables (verification.hrss_via:
// frontend): one call per household, delivered by the routes of
// docs/examples/routes/verification-hrss-frontend.yaml, never asked
// directly. Its Ask and Lookup refuse (permanently), so a SOAP route left
// running by mistake fails its calls with a clear reason.
type Planner struct{}

// ErrFrontEnd is a direct call of a partner reached through the front-end tables.
var ErrFrontEnd = errors.New("hrss: social security is reached through the front-end tables (verification.hrss_via: frontend), not asked directly")

// ID is the partner id.
func (Planner) ID() string { return PartnerID }

// Scopes: one call per household.
func (Planner) Scopes([]household.Member) []string { return []string{""} }

// Ask refuses: the front-end routes deliver the calls.
func (Planner) Ask(context.Context, household.Query) (household.Answer, error) {
	return household.Answer{}, connectors.Permanent(ErrFrontEnd)
}

// Lookup refuses: the answer rows come through the front-end routes.
func (Planner) Lookup(context.Context, household.Query) (household.Answer, bool, error) {
	return household.Answer{}, false, connectors.Permanent(ErrFrontEnd)
}
