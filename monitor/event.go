package monitor

import "time"

// EventType names an exchange step.
type EventType string

// The exchange steps, provenance style.
const (
	Received          EventType = "received"
	Fetched           EventType = "fetched"
	Sent              EventType = "sent"
	Uploaded          EventType = "uploaded"
	Downloaded        EventType = "downloaded"
	Claimed           EventType = "claimed"
	Transformed       EventType = "transformed"
	Validated         EventType = "validated"
	Reconciled        EventType = "reconciled"
	Retried           EventType = "retried"
	Failed            EventType = "failed"
	Rejected          EventType = "rejected"
	DeadLettered      EventType = "dead_lettered"
	Replayed          EventType = "replayed"
	Dropped           EventType = "dropped"
	ExpectationMissed EventType = "expectation_missed"
	StageChanged      EventType = "stage_changed"
)

// Status is the outcome of a step.
type Status string

// Outcomes.
const (
	OK      Status = "ok"
	Warning Status = "warning"
	Error   Status = "error"
)

// Direction of an exchange relative to the hub.
type Direction string

// Directions.
const (
	Inbound  Direction = "in"
	Outbound Direction = "out"
	Internal Direction = "internal"
)

// Event is one exchange step. Business keys are masked or HMAC tokens, never
// a raw ID or account number; error messages are masked before they get here.
type Event struct {
	// Time of the step (millisecond precision is kept).
	Time time.Time
	// ID is unique per event (assigned by the writer when empty).
	ID string
	// Partner is the partner id (e.g. "bank.boc", "funeral.fh01").
	Partner string
	// Flow is the business flow (e.g. "disbursement", "burial-push").
	Flow string
	// Direction relative to the hub.
	Direction Direction
	// Channel is the transport (sftp, http, bus, file).
	Channel string
	// Type is the step.
	Type EventType
	// Status is the outcome.
	Status Status
	// ExchangeID identifies the exchange (a file, a request, a record).
	ExchangeID string
	// ParentIDs link to the exchanges this one came from (lineage).
	ParentIDs []string
	// BatchID and Stage place the event in a multi-stage batch.
	BatchID string
	Stage   string
	// BusinessKey is masked or an HMAC token.
	BusinessKey string
	// PartnerRef is the partner's own reference.
	PartnerRef string
	// FileName, Digest (SM3 hex) and Bytes describe a file.
	FileName string
	Digest   string
	Bytes    int64
	// Records and RecordsFailed count records in a file or batch.
	Records       int64
	RecordsFailed int64
	// AmountFen is a money total in fen.
	AmountFen int64
	// Duration of the step.
	Duration time.Duration
	// Attempt is the delivery attempt (1 for the first).
	Attempt int
	// ErrorClass, ErrorCode and ErrorMessage describe a failure (masked).
	ErrorClass   string
	ErrorCode    string
	ErrorMessage string
	// Component and Node tell where it happened.
	Component string
	Node      string
	// Attrs carries further key/value pairs.
	Attrs map[string]string

	// spooled marks an event kept in the writer's spool until stored.
	spooled bool
}
