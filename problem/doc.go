// Package problem writes RFC 9457 "application/problem+json" answers with a
// stable machine-readable code, so partners and the console can react to an
// error without parsing its text. No stack trace or internal detail ever goes
// into an answer: Detail is written for the caller, and Internal keeps the
// cause out of the body while still letting the server log it.
//
// Recorder is the hub's one status-recording response writer: middleware
// that audits, meters or emits events about an answer wraps the writer in it
// and reads the status, the body size and the problem code afterwards.
package problem
