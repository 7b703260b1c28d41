// Package monitortest has recorders of monitor events and alerts, and the
// real expectation tracker over a throwaway event store, for tests of the
// packages that emit events and register expectations.
package monitortest

import (
	"sync"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Recorder keeps every event emitted to it; safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	evs      []monitor.Event
	watchers []watcher
}

type watcher struct {
	match func(monitor.Event) bool
	ch    chan monitor.Event
}

// Emit records ev.
func (r *Recorder) Emit(ev monitor.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	kept := r.watchers[:0]
	for _, w := range r.watchers {
		if w.match(ev) {
			w.ch <- ev
			continue
		}
		kept = append(kept, w)
	}
	clear(r.watchers[len(kept):])
	r.watchers = kept
	r.mu.Unlock()
}

// Next returns a channel that receives the first event emitted after the
// call for which match is true (events recorded before do not count). A
// test waits on it instead of sleeping until something has happened; match
// runs under the recorder's lock and must not call it.
func (r *Recorder) Next(match func(monitor.Event) bool) <-chan monitor.Event {
	ch := make(chan monitor.Event, 1)
	r.mu.Lock()
	r.watchers = append(r.watchers, watcher{match: match, ch: ch})
	r.mu.Unlock()
	return ch
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
