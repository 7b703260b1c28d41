// Package monitortest has a recorder of monitor events for tests of the
// packages that emit them.
package monitortest

import (
	"sync"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Recorder keeps every event emitted to it; safe for concurrent use.
type Recorder struct {
	mu  sync.Mutex
	evs []monitor.Event
}

// Emit records ev.
func (r *Recorder) Emit(ev monitor.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

// Events returns a copy of the events so far, in emit order.
func (r *Recorder) Events() []monitor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]monitor.Event(nil), r.evs...)
}

// Count counts the events for which match is true.
func (r *Recorder) Count(match func(monitor.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.evs {
		if match(e) {
			n++
		}
	}
	return n
}

// CountType counts the events of type t.
func (r *Recorder) CountType(t monitor.EventType) int {
	return r.Count(func(e monitor.Event) bool { return e.Type == t })
}
