package lease_test

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/lease"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func elector(t *testing.T, db *store.DB, node string, ttl time.Duration, c clock.Clock) *lease.Elector {
	t.Helper()
	e, err := lease.New(context.Background(), db, lease.Options{Node: node, TTL: ttl, Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSQLite(t *testing.T) { suite(t, storetest.Open) }

// TestIntegrationPostgres runs the same cases on PostgreSQL (the cluster
// profile's state database).
func TestIntegrationPostgres(t *testing.T) {
	if os.Getenv("MZHUB_TEST_POSTGRES") == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping PostgreSQL test (deploy/postgres/start.sh starts a server)")
	}
	suite(t, storetest.OpenPostgres)
}

// suite runs each case in a testing/synctest bubble on a database opened
// inside it: the electors' TTLs, renewals and the tests' waits run on the
// bubble's fake clock, so a case takes no wall time and does not depend on
// how loaded the machine is; synctest.Wait tells when every node has done
// what it can before the test looks.
func suite(t *testing.T, open func(testing.TB) *store.DB) {
	for _, c := range []struct {
		name string
		f    func(*testing.T, *store.DB)
	}{
		{"TakeRenewExpire", testTakeRenewExpire},
		{"Release", testRelease},
		{"RunOneAtATime", testRunOneAtATime},
		{"RunTakesOverFromDeadHolder", testTakeOverFromDead},
		{"Members", testMembers},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { c.f(t, open(t)) })
		})
	}
}

func testTakeRenewExpire(t *testing.T, db *store.DB) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	a, b := elector(t, db, "a", 15*time.Second, fake), elector(t, db, "b", 15*time.Second, fake)
	const name = "take-renew-expire"
	steps := []struct {
		advance time.Duration
		who     *lease.Elector
		want    bool
	}{
		{0, a, true},                 // free: a takes it
		{0, b, false},                // held by a
		{10 * time.Second, a, true},  // a renews before expiry
		{10 * time.Second, b, false}, // renewed: still a's (20 s after the first take)
		{16 * time.Second, b, true},  // a stopped renewing: expired, b takes it
		{0, a, false},                // a cannot take it back
	}
	for i, s := range steps {
		fake.Advance(s.advance)
		got, err := s.who.TryAcquire(ctx, name)
		if err != nil || got != s.want {
			t.Fatalf("step %d: got %v, %v; want %v", i, got, err, s.want)
		}
	}
	holder, until, err := a.Holder(ctx, name)
	if err != nil || holder != "b" || !until.Equal(fake.Now().Add(15*time.Second).Truncate(time.Millisecond)) {
		t.Errorf("holder %q until %s, %v", holder, until, err)
	}
	fake.Advance(time.Minute)
	if holder, _, err := a.Holder(ctx, name); err != nil || holder != "" {
		t.Errorf("expired lease still held by %q (%v)", holder, err)
	}
}

func testRelease(t *testing.T, db *store.DB) {
	ctx := context.Background()
	a, b := elector(t, db, "a", time.Hour, clock.Real{}), elector(t, db, "b", time.Hour, clock.Real{})
	const name = "release"
	if ok, err := a.TryAcquire(ctx, name); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	// Only the holder's release counts.
	if err := b.Release(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.TryAcquire(ctx, name); ok {
		t.Fatal("b took a lease a holds after b's release")
	}
	if err := a.Release(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryAcquire(ctx, name); !ok || err != nil {
		t.Fatalf("b after a's release: %v %v", ok, err)
	}
}

// job counts how many nodes run it at once and which ran it.
type job struct {
	running, most atomic.Int32
	mu            sync.Mutex
	ran           map[string]int
}

func (j *job) run(node string) func(context.Context) error {
	return func(ctx context.Context) error {
		n := j.running.Add(1)
		for {
			m := j.most.Load()
			if n <= m || j.most.CompareAndSwap(m, n) {
				break
			}
		}
		j.mu.Lock()
		j.ran[node]++
		j.mu.Unlock()
		<-ctx.Done()
		j.running.Add(-1)
		return nil
	}
}

func (j *job) count(node string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ran[node]
}

// waitFor lets the nodes run until cond holds, at most a minute of the
// bubble's fake time: each round waits until every goroutine is blocked
// (synctest.Wait), then lets a tenth of a TTL pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute (fake time)", what)
		}
		time.Sleep(10 * time.Millisecond) // fake time: the bubble's clock moves on
	}
}

// testRunOneAtATime: three nodes run one job under one lease; it runs on
// one node at a time, and when that node stops, another takes over.
func testRunOneAtATime(t *testing.T, db *store.DB) {
	const name = "one-at-a-time"
	j := &job{ran: map[string]int{}}
	type node struct {
		cancel context.CancelFunc
		done   chan error
	}
	nodes := map[string]*node{}
	for _, id := range []string{"a", "b", "c"} {
		e := elector(t, db, id, 300*time.Millisecond, clock.Real{})
		ctx, cancel := context.WithCancel(context.Background())
		n := &node{cancel: cancel, done: make(chan error, 1)}
		go func() { n.done <- e.Run(ctx, name, j.run(id)) }()
		nodes[id] = n
	}
	stop := func(id string) {
		nodes[id].cancel()
		select {
		case err := <-nodes[id].done:
			if err != nil {
				t.Errorf("Run %s: %v", id, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Run %s did not return", id)
		}
		delete(nodes, id)
	}
	defer func() {
		for id := range nodes {
			stop(id)
		}
	}()
	probe := elector(t, db, "probe", time.Second, clock.Real{})
	leader := func() string {
		for id := range nodes {
			if j.count(id) > 0 && j.running.Load() == 1 {
				if h, _, _ := probe.Holder(context.Background(), name); h == id {
					return id
				}
			}
		}
		return ""
	}
	var first string
	waitFor(t, "a leader", func() bool { first = leader(); return first != "" })
	time.Sleep(time.Second) // three TTLs of fake time: nobody else starts meanwhile
	stop(first)
	var second string
	waitFor(t, "a new leader", func() bool { second = leader(); return second != "" && second != first })
	if m := j.most.Load(); m != 1 {
		t.Errorf("the job ran on %d nodes at once", m)
	}
}

// testTakeOverFromDead: a node that took the lease and died (no renewal, no
// release) holds it until it expires; then a running node takes over.
func testTakeOverFromDead(t *testing.T, db *store.DB) {
	const name = "dead-holder"
	ttl := 500 * time.Millisecond
	if ok, err := elector(t, db, "dead", ttl, clock.Real{}).TryAcquire(context.Background(), name); !ok || err != nil {
		t.Fatalf("dead node: %v %v", ok, err)
	}
	took := time.Now()
	j := &job{ran: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- elector(t, db, "live", ttl, clock.Real{}).Run(ctx, name, j.run("live")) }()
	waitFor(t, "the live node to take over", func() bool { return j.count("live") == 1 })
	if since := time.Since(took); since < ttl {
		t.Errorf("took over after %s, before the dead node's lease (%s) expired", since, ttl)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// testMembers: nodes in a group see each other; one that leaves is no
// longer counted. The first node's metrics follow.
func testMembers(t *testing.T, db *store.DB) {
	var seen [2]atomic.Int32
	cancels := make([]context.CancelFunc, 2)
	dones := make([]chan error, 2)
	reg := prometheus.NewRegistry()
	for i, node := range []string{"m1", "m2"} {
		o := lease.Options{Node: node, TTL: 300 * time.Millisecond}
		if i == 0 {
			o.Registerer = reg
		}
		e, err := lease.New(context.Background(), db, o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i], dones[i] = cancel, make(chan error, 1)
		go func() { dones[i] <- e.Member(ctx, "members", func(n int) { seen[i].Store(int32(n)) }) }()
	}
	waitFor(t, "both members counted by both", func() bool { return seen[0].Load() == 2 && seen[1].Load() == 2 })
	if got := gauge(reg, "mzhub_lease_held", "members/m1"); got != 1 {
		t.Errorf("mzhub_lease_held{lease=members/m1} = %v", got)
	}
	cancels[1]()
	if err := <-dones[1]; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member that left no longer counted", func() bool { return seen[0].Load() == 1 })
	waitFor(t, "mzhub_lease_members to follow", func() bool {
		return gauge(reg, "mzhub_lease_members", "members") == 1
	})
	cancels[0]()
	<-dones[0]
	if got := gauge(reg, "mzhub_lease_held", "members/m1"); got != 0 {
		t.Errorf("after leaving, mzhub_lease_held{lease=members/m1} = %v", got)
	}
}

// gauge returns the value of family name's series whose one label is v
// (-1: no such series).
func gauge(reg *prometheus.Registry, name, v string) float64 {
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == v {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
