// Package expect tracks expected exchanges ("BOC's return file for batch
// 2026-11 by the 5th 18:00", "the data sea's daily death file by 06:00"):
// recurring rules from configuration and one-offs registered by services.
// An expectation is met by a matching ok event in its window; a missed one
// raises an alert and emits an expectation_missed event. State lives in the
// state database; matching reads the event store, so nothing is lost across
// restarts.
package expect
