// Package disbursement runs the monthly allowance disbursement cycle and
// the quarterly deduction cycle with the six partner banks:
//
//  1. intake of the payment list (a list file, or a synthetic one),
//  2. validation with the tender's rules (rejects and flags with reasons),
//  3. total check against the official letter total (发函总额),
//  4. district then city confirmation by named users (audited),
//  5. per-bank files generated (streaming, in each bank's layout), signed, uploaded,
//  6. return files fetched, parsed and reconciled record by record,
//  7. failures listed for follow-up and carried into the next run,
//  8. reports per bank and district, and period statistics.
//
// Every stage is persisted in the state store and resumable: Run picks up a
// batch where it stopped, after a crash too, without paying anyone twice
// (uploads and return files go through the SFTP ledgers, reconciliation is
// idempotent). Each stage emits monitor events with BatchID and Stage.
//
// Per-person state is compact: the list file stays on disk (it is read
// again, streaming, for file generation) and the database keeps one row
// of integers per person.
package disbursement
