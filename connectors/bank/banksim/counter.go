package banksim

import (
	"strconv"
	"sync"
)

// Counter counts how many times each reference was paid. References of the
// hub are digits whose last 9 are a sequence number; those are kept in
// bitsets per prefix (4.4 million persons cost about 1 MiB), others in a map.
type Counter struct {
	mu     sync.Mutex
	once   map[string][]uint64
	twice  map[string][]uint64
	other  map[string]int
	total  int64
	double int64
}

func newCounter() *Counter {
	return &Counter{once: map[string][]uint64{}, twice: map[string][]uint64{}, other: map[string]int{}}
}

func split(ref string) (string, int, bool) {
	if len(ref) < 10 {
		return "", 0, false
	}
	n, err := strconv.Atoi(ref[len(ref)-9:])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return ref[:len(ref)-9], n, true
}

func set(m map[string][]uint64, p string, n int) bool {
	b := m[p]
	if w := n/64 + 1; w > len(b) {
		nb := make([]uint64, max(w, 2*len(b)))
		copy(nb, b)
		b = nb
		m[p] = b
	}
	was := b[n/64]&(1<<(n%64)) != 0
	b[n/64] |= 1 << (n % 64)
	return was
}

// add records one payment of ref.
func (c *Counter) add(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	if p, n, ok := split(ref); ok {
		if set(c.once, p, n) {
			c.double++
			set(c.twice, p, n)
		}
		return
	}
	c.other[ref]++
	if c.other[ref] > 1 {
		c.double++
	}
}

// Times returns how often ref was paid (0, 1, or 2 meaning two or more).
func (c *Counter) Times(ref string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, n, ok := split(ref); ok {
		get := func(m map[string][]uint64) bool {
			b := m[p]
			return n/64 < len(b) && b[n/64]&(1<<(n%64)) != 0
		}
		switch {
		case get(c.twice):
			return 2
		case get(c.once):
			return 1
		}
		return 0
	}
	return min(c.other[ref], 2)
}

// Total is the number of payments made (duplicates included).
func (c *Counter) Total() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Double is the number of payments made to a reference already paid: it
// must stay 0.
func (c *Counter) Double() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.double
}
