package monitor

import (
	"context"
	"time"
)

// Severity of an alert.
type Severity string

// Severities.
const (
	SevInfo     Severity = "info"
	SevWarning  Severity = "warning"
	SevCritical Severity = "critical"
)

// AlertState is where an alert is in its life.
type AlertState string

// Alert states.
const (
	AlertOpen     AlertState = "open"
	AlertAcked    AlertState = "acked"
	AlertResolved AlertState = "resolved"
)

// Alert is a persistent, de-duplicated alert (monitor/alert keeps them).
type Alert struct {
	ID int64
	// Fingerprint de-duplicates: while an alert with the same fingerprint is
	// not resolved, raising it again only counts.
	Fingerprint string
	// Rule names what raised it (error_rate, backlog, staleness,
	// reconciliation, expectation, quality).
	Rule     string
	Severity Severity
	Partner  string
	Flow     string
	// Summary is a masked one-line description in English (logs, the API,
	// alerts stored before message keys existed).
	Summary string
	// Message is the summary as a message key (one of AlertMessages) and
	// Args its named parameters, for the console to show in the reader's
	// language. Empty on alerts stored before keys existed.
	Message string
	Args    map[string]string
	State   AlertState
	// FirstAt and LastAt bound the raises; Count counts them.
	FirstAt time.Time
	LastAt  time.Time
	Count   int64
	// AckedBy/AckedAt and ResolvedBy/ResolvedAt name who acted and when; Note is the last note.
	AckedBy    string
	AckedAt    time.Time
	ResolvedBy string
	ResolvedAt time.Time
	Note       string
	// ResolveMessage and ResolveArgs say why the monitor resolved the alert
	// by itself (ResolvedBy is then AutoResolver; Note has it in English).
	ResolveMessage string
	ResolveArgs    map[string]string
}

// AutoResolver is who resolved an alert that the monitor resolved by itself
// (a partner_down alert once the partner answers again).
const AutoResolver = "system:monitor"

// ExpectationState tells whether an expected exchange came.
type ExpectationState string

// Expectation states.
const (
	ExpectPending ExpectationState = "pending"
	ExpectMet     ExpectationState = "met"
	ExpectMissed  ExpectationState = "missed"
)

// Expecter registers expected exchanges (monitor/hubmon's *Monitor,
// monitor/expect's *Tracker). The services and connectors that expect a
// partner's answer by a time take one.
type Expecter interface {
	Expect(ctx context.Context, e Expectation) error
}

// Expectation is one expected exchange: "BOC's return file for batch
// 2026-11 by the 5th 18:00" (monitor/expect keeps them).
type Expectation struct {
	ID int64
	// Name of the rule or the one-off expectation.
	Name    string
	Partner string
	Flow    string
	// Type is the step that meets it (e.g. downloaded); empty matches any ok step.
	Type EventType
	// BatchID, when set, must match the event's batch.
	BatchID string
	// FilePattern, when set, is a path.Match pattern on the event's file name.
	FilePattern string
	// Due is the deadline.
	Due time.Time
	// From, when set, is when events start to count (Expect: zero means
	// the time of registering). A service that registers after the fact
	// (after its own commit) sets it so an event between the two is not
	// missed.
	From  time.Time
	State ExpectationState
	// MetAt and MetEventID tell which event met it.
	MetAt      time.Time
	MetEventID string
}

// IncidentPenalty is what each incident takes off a quality score.
const IncidentPenalty = 10.0

// QualityScore is one partner flow of the data-quality report; rates are 0..1.
type QualityScore struct {
	Partner string
	Flow    string
	// Events in the window.
	Events int64
	// Completeness is the share of records not failed (1 with no records).
	Completeness float64
	// Format is the share of events without a format or validation error.
	Format float64
	// Timeliness is the share of events within the rule's answer time.
	Timeliness float64
	// Incidents counts the incident alerts of the window (failed payments,
	// reconciliation and trailer mismatches, late returns and files,
	// partner down; see alert.IncidentRules).
	Incidents int64
	// Score is 0..100: 40 % completeness, 30 % format, 30 % timeliness,
	// less IncidentPenalty points for each incident (never below 0).
	Score float64
	// MinScore is the rule's alert threshold (0: none).
	MinScore float64
	// Sampled lists answered exchanges picked at random for manual review.
	Sampled []string
}
