package access

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters holds one token bucket per key (partner id or source IP) and
// forgets buckets idle for ten minutes, so a scan from many addresses cannot
// grow it without bound.
type limiters struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	inserts int
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiters() *limiters { return &limiters{buckets: map[string]*bucket{}} }

// allow takes a token from key's bucket (created with r and burst) and, when
// refused, says how long until the next token.
func (l *limiters) allow(key string, r float64, burst int, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.inserts++
		if l.inserts%1024 == 0 {
			for k, ob := range l.buckets {
				if now.Sub(ob.last) > 10*time.Minute {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(r), burst)}
		l.buckets[key] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	res := b.lim.ReserveN(now, 1)
	d := res.DelayFrom(now)
	res.CancelAt(now)
	return false, d
}
