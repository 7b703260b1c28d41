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
	// replicas shares each limit between the hub's replicas (at least 1):
	// behind a load balancer, each replica allows rate/replicas.
	replicas int
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
	// r and burst are the configured limit, before sharing.
	r     float64
	burst int
}

// reshare sets b's limiter to its share of the configured limit.
func (b *bucket) reshare(replicas int, now time.Time) {
	lim, bu := share(b.r, b.burst, replicas)
	if b.lim.Limit() != lim || b.lim.Burst() != bu {
		b.lim.SetLimitAt(now, lim)
		b.lim.SetBurstAt(now, bu)
	}
}

func newLimiters() *limiters { return &limiters{buckets: map[string]*bucket{}, replicas: 1} }

// setReplicas shares every limit between n replicas from now on.
func (l *limiters) setReplicas(n int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n = max(n, 1); n == l.replicas {
		return
	}
	l.replicas = n
	for _, b := range l.buckets {
		b.reshare(n, now)
	}
}

// share is this replica's part of a limit: the rate divided by the
// replicas, the burst too but never below one request.
func share(r float64, burst, replicas int) (rate.Limit, int) {
	return rate.Limit(r / float64(replicas)), max(1, (burst+replicas-1)/replicas)
}

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
		lim, bu := share(r, burst, l.replicas)
		b = &bucket{lim: rate.NewLimiter(lim, bu), r: r, burst: burst}
		l.buckets[key] = b
	}
	if b.r != r || b.burst != burst {
		// The partner's configured limit changed.
		b.r, b.burst = r, burst
		b.reshare(l.replicas, now)
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
