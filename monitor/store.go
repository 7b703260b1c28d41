package monitor

import (
	"context"
	"time"
)

// Store keeps exchange events and answers the questions the console, the
// alert rules and the data-quality report ask. monitor/store/sqlite and
// monitor/store/clickhouse implement it and pass the shared suite in
// monitor/store/eventstoretest. All methods are safe for concurrent use.
type Store interface {
	// Append stores a batch of events. It is called by the Writer only, from
	// one goroutine; on error the whole batch is retried later, so a store
	// must tolerate a batch that was partly written before (event ids are
	// unique, readers may see a duplicate for a moment on ClickHouse).
	Append(ctx context.Context, evs []Event) error
	// Search returns events matching f, newest first, at most f.Limit.
	Search(ctx context.Context, f Filter) ([]Event, error)
	// Children returns the lineage links whose parent is one of ids.
	Children(ctx context.Context, ids []string, limit int) ([]Link, error)
	// Aggregate summarises events of [q.From, q.To) per partner and flow.
	Aggregate(ctx context.Context, q AggQuery) ([]Agg, error)
	// LastSeen tells, per partner and flow, when the last event and the last
	// successful event happened (over all time).
	LastSeen(ctx context.Context) ([]Last, error)
	// Batches summarises multi-stage batches per batch and stage.
	Batches(ctx context.Context, q BatchQuery) ([]BatchStage, error)
	// Failures groups failed events of [from, to) by partner, flow and error class.
	Failures(ctx context.Context, from, to time.Time) ([]FailureGroup, error)
	// DeadLetters returns dead-lettered exchanges with no later replayed or
	// dropped event, newest first.
	DeadLetters(ctx context.Context, f Filter) ([]Event, error)
	// Series returns event counts per time bucket of q.Step.
	Series(ctx context.Context, q SeriesQuery) ([]Point, error)
	// Close releases the store.
	Close() error
}

// Filter selects events. Empty fields match everything.
type Filter struct {
	// From and To bound the event time (To exclusive); zero means unbounded.
	From, To time.Time
	// Partner, Flow, Type and Status match exactly.
	Partner string
	Flow    string
	Type    EventType
	Status  Status
	// ExchangeIDs matches any of the ids.
	ExchangeIDs []string
	// BatchID, FileName, PartnerRef, BusinessKey and ErrorClass match exactly.
	BatchID     string
	FileName    string
	PartnerRef  string
	BusinessKey string
	ErrorClass  string
	// Limit caps the result; 0 means 100.
	Limit int
}

// Limited returns f.Limit or the default of 100.
func (f Filter) Limited() int {
	if f.Limit <= 0 {
		return 100
	}
	return f.Limit
}

// Link says that exchange Child came from exchange Parent.
type Link struct {
	Parent string
	Child  string
}

// SlowBounds are the durations the hourly rollups count slower events
// against (a quality rule's answer_within on one of them is scored from the
// rollup).
var SlowBounds = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}

// SlowBound returns the index of d in SlowBounds, or -1.
func SlowBound(d time.Duration) int {
	for i, b := range SlowBounds {
		if b == d {
			return i
		}
	}
	return -1
}

// AggQuery asks for per partner and flow aggregates.
type AggQuery struct {
	// From and To bound the window (To exclusive).
	From, To time.Time
	// SlowerThan counts events whose duration exceeds it (0: not counted).
	SlowerThan time.Duration
	// SkipP95 leaves Agg.P95 zero when the caller does not need it (it is
	// the costly part on SQLite).
	SkipP95 bool
	// Coarse allows the store to answer from its hourly rollup: the window
	// is widened to whole hours and only Events, Errors, Bytes, Records,
	// RecordsFailed, FormatErrors and Slow are filled. Slow comes from the
	// rollup when SlowerThan is one of SlowBounds; for another SlowerThan
	// the store answers from the raw events.
	Coarse bool
}

// Agg aggregates the events of one partner and flow in a window.
type Agg struct {
	Partner string
	Flow    string
	// Events and Errors count events and those with status error.
	Events int64
	Errors int64
	// Retries counts retried events, DeadLetters dead-lettered ones.
	Retries     int64
	DeadLetters int64
	// Records and RecordsFailed sum the record counts.
	Records       int64
	RecordsFailed int64
	// FormatErrors counts validation failures (type validated or rejected
	// with status error, or error class "format").
	FormatErrors int64
	// Slow counts events slower than AggQuery.SlowerThan.
	Slow int64
	// Bytes and AmountFen sum sizes and money.
	Bytes     int64
	AmountFen int64
	// P95 is the 95th percentile of the durations of events that have one.
	P95 time.Duration
}

// ErrorRate is Errors/Events (0 with no events).
func (a Agg) ErrorRate() float64 {
	if a.Events == 0 {
		return 0
	}
	return float64(a.Errors) / float64(a.Events)
}

// Last tells when a partner flow was last seen and last succeeded.
type Last struct {
	Partner string
	Flow    string
	// LastEvent is the time of the newest event.
	LastEvent time.Time
	// LastOK is the time of the newest event with status ok (zero if none).
	LastOK time.Time
}

// BatchQuery selects batches.
type BatchQuery struct {
	// From leaves out stages whose newest event is older; zero means all.
	From time.Time
	// BatchID selects one batch; empty means all.
	BatchID string
	// Limit caps the number of stage rows; 0 means 500.
	Limit int
}

// BatchStage summarises one stage of one batch.
type BatchStage struct {
	BatchID string
	Stage   string
	Partner string
	Flow    string
	// FirstAt and LastAt are the times of its first and newest event.
	FirstAt time.Time
	LastAt  time.Time
	// Events and Errors count its events.
	Events int64
	Errors int64
	// RecordsIn sums the records of inbound steps (received, fetched,
	// downloaded, claimed); RecordsOut those of outbound and processing steps
	// (sent, uploaded, transformed, validated, reconciled). A stage_changed
	// event marks the end of a stage and is not counted.
	RecordsIn     int64
	RecordsOut    int64
	RecordsFailed int64
	// LastType and LastStatus are those of its newest event.
	LastType   EventType
	LastStatus Status
}

// FailureGroup groups failures by partner, flow and error class.
type FailureGroup struct {
	Partner    string
	Flow       string
	ErrorClass string
	// Count of failed, rejected or dead-lettered events.
	Count int64
	// DeadLetters among them.
	DeadLetters int64
	// LastAt is the newest one; Sample is its (masked) message.
	LastAt time.Time
	Sample string
}

// SeriesQuery asks for a time series.
type SeriesQuery struct {
	From, To time.Time
	// Step is the bucket width (at least one second).
	Step time.Duration
	// Partner and Flow narrow the series; empty means all.
	Partner string
	Flow    string
}

// Point is one bucket of a series.
type Point struct {
	// T is the start of the bucket.
	T time.Time
	// Events, Errors and Bytes in the bucket.
	Events int64
	Errors int64
	Bytes  int64
	// P95 duration in the bucket.
	P95 time.Duration
}
