package monitor

import "time"

// Cycle statuses: who acts next on a cycle.
const (
	// CycleQueued: asked for; the hub's cycle runner picks it up.
	CycleQueued = "queued"
	// CycleRunning: a runner works on it.
	CycleRunning = "running"
	// CycleAwaitingLetterTotal: the list is in and checked; the official
	// letter's total must be entered.
	CycleAwaitingLetterTotal = "awaiting_letter_total"
	// CycleAwaitingConfirmation: the totals match; the district, then the
	// city must confirm (two different accounts).
	CycleAwaitingConfirmation = "awaiting_confirmation"
	// CycleFailed: a stage failed (Error says why); it waits to be resumed.
	CycleFailed = "failed"
	// CycleDone: every stage finished.
	CycleDone = "done"
)

// Confirmation levels, in the order they are given.
const (
	// LevelDistrict is the district civil-affairs office's confirmation.
	LevelDistrict = "district"
	// LevelCity is the city bureau's confirmation, after the district's.
	LevelCity = "city"
)

// Cycle is one run of a business cycle that operators drive from the
// console: a monthly allowance disbursement or a quarterly deduction. Its
// Name is the batch id its events carry. Money is in fen.
type Cycle struct {
	// Name is the batch id ("disbursement-2026-11").
	Name string
	// Kind is disbursement or deduction.
	Kind string
	// Period is the month, "2026-11".
	Period string
	// Stage is the stage the cycle is at (or failed at).
	Stage string
	// Status is one of the Cycle* statuses.
	Status string
	// Error says why a failed cycle failed.
	Error string
	// Records is the count of list records; Valid those that passed the checks.
	Records, Valid int64
	// SystemTotalFen is the total of the valid records.
	SystemTotalFen int64
	// LetterTotalFen is the official letter's total (0: not entered yet).
	LetterTotalFen int64
	// Confirmations given so far, district first.
	Confirmations []CycleConfirmation
}

// Confirmed returns the confirmation at level, if given.
func (c Cycle) Confirmed(level string) (CycleConfirmation, bool) {
	for _, x := range c.Confirmations {
		if x.Level == level {
			return x, true
		}
	}
	return CycleConfirmation{}, false
}

// CycleConfirmation is one level's confirmation of a cycle.
type CycleConfirmation struct {
	// Level is LevelDistrict or LevelCity.
	Level string
	// User is the account that confirmed.
	User string
	// At is when.
	At time.Time
}

// CycleStage is one stage of a cycle as it ran.
type CycleStage struct {
	// Stage names it.
	Stage string
	// Started and Finished (zero while it runs or when it failed).
	Started, Finished time.Time
	// Detail is the stage's own summary ("28,500 records, 9 rejected").
	Detail string
}

// CycleStatus is where one cycle stands, stage by stage.
type CycleStatus struct {
	Cycle
	// Stages that have started, in order.
	Stages []CycleStage
	// Counts of records per payment status (listed, rejected, sent, paid, failed, missing).
	Counts map[string]int64
	// Issues counts validation findings per code.
	Issues map[string]int64
	// Quarantined counts return records that could not be matched.
	Quarantined int64
}

// CycleRequest starts, resumes or completes a cycle.
type CycleRequest struct {
	// Kind is disbursement or deduction.
	Kind string
	// Period is the month, "2026-11".
	Period string
	// List names a list file in the inbox to take in (only before intake).
	List string
	// LetterTotalFen records the official letter's total; 0 keeps the stored one.
	LetterTotalFen int64
}

// CycleInbox is where list files wait to be taken in.
type CycleInbox struct {
	// Dir is the inbox directory on the hub's host.
	Dir string
	// Lists are the list file names in it, sorted.
	Lists []string
}
