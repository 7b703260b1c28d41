// Package problem writes RFC 9457 "application/problem+json" answers with a
// stable machine-readable code, so partners and the console can react to an
// error without parsing its text. No stack trace or internal detail ever goes
// into an answer: Detail is written for the caller, and Internal keeps the
// cause out of the body while still letting the server log it.
package problem
