// Package alert keeps persistent, de-duplicated alerts in the state
// database (acknowledged and resolved by named, audited users) and evaluates
// the alert rules: error rate, dead-letter backlog, staleness against the
// flow schedule, and reconciliation mismatches.
package alert
