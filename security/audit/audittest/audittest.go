// Package audittest holds the one fake of audit.Appender that tests share.
package audittest

import (
	"context"
	"strings"
	"sync"

	"github.com/shanghai-mca/mzhub/security/audit"
)

// Recorder is an audit.Appender that keeps every record in memory. It is
// safe for concurrent use; its zero value is ready.
type Recorder struct {
	mu   sync.Mutex
	recs []audit.Record
	err  error
}

var _ audit.Appender = (*Recorder)(nil)

// Append keeps r and returns its 1-based sequence number, or the error set
// by Fail (the record is then not kept).
func (r *Recorder) Append(_ context.Context, rec audit.Record) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.recs = append(r.recs, rec)
	return int64(len(r.recs)), nil
}

// Fail makes every later Append return err; Fail(nil) makes it succeed
// again.
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// Records returns a copy of the records kept so far, oldest first.
func (r *Recorder) Records() []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Record(nil), r.recs...)
}

// Last returns the most recent record; ok is false when there is none.
func (r *Recorder) Last() (rec audit.Record, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 {
		return audit.Record{}, false
	}
	return r.recs[len(r.recs)-1], true
}

// Has reports whether a record with action and outcome was kept whose
// Detail contains detailPart ("" matches any detail).
func (r *Recorder) Has(action, outcome, detailPart string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Action == action && rec.Outcome == outcome && strings.Contains(rec.Detail, detailPart) {
			return true
		}
	}
	return false
}
