package funeral

import (
	"sync"
	"time"
)

// stats counts calls per partner in minute buckets over the last hour.
type stats struct {
	mu sync.Mutex
	by map[string]*partnerStats
}

type partnerStats struct {
	lastWrite time.Time
	minute    [60]int64
	calls     [60]int64
	errors    [60]int64
}

func newStats() *stats { return &stats{by: map[string]*partnerStats{}} }

func (s *stats) add(partnerID string, now time.Time, write, failed bool) {
	if partnerID == "" {
		return
	}
	m := now.Unix() / 60
	i := m % 60
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.by[partnerID]
	if !ok {
		ps = &partnerStats{}
		s.by[partnerID] = ps
	}
	if ps.minute[i] != m {
		ps.minute[i], ps.calls[i], ps.errors[i] = m, 0, 0
	}
	ps.calls[i]++
	if failed {
		ps.errors[i]++
	} else if write {
		ps.lastWrite = now
	}
}

// hour returns calls and errors of the last 60 minutes and the last successful write.
func (s *stats) hour(partnerID string, now time.Time) (calls, errs int64, lastWrite time.Time) {
	m := now.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.by[partnerID]
	if !ok {
		return 0, 0, time.Time{}
	}
	for i := range ps.minute {
		if m-ps.minute[i] < 60 {
			calls += ps.calls[i]
			errs += ps.errors[i]
		}
	}
	return calls, errs, ps.lastWrite
}
