package routes_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/bus/pulsar"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// runRouteOnBus runs a keyed route on a real bus: 300 messages over 30
// keys, a sink failing transiently now and then and permanently for one
// message; every good message arrives once, in key order, and the bad one
// is dead-lettered.
func runRouteOnBus(t *testing.T, b bus.Bus) {
	t.Helper()
	sfx := make([]byte, 4)
	_, _ = rand.Read(sfx)
	topic := "routes-test-" + hex.EncodeToString(sfx)
	sinks := routetest.NewSinks()
	db := storetest.Open(t)
	dir := t.TempDir()
	w := watch(b)
	route := fmt.Sprintf(`id: onbus-%s
from: {kind: bus, config: {topic: %s}}
key: body.person
idempotency_key: string(body.n)
steps:
  - validate:
      rules:
        - expr: 'body.n != 13'
          message: record 13 is malformed
  - map:
      fields: {person: body.person, n: body.n}
to:
  - kind: record
    config: {name: out}
errors: {max_attempts: 5, backoff: 20ms, max_backoff: 100ms}
`, hex.EncodeToString(sfx), topic)
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(route), 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: w, Store: db, Connectors: sinks.Registry(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	w.wait(t, "the route's subscription", time.Minute, func() bool { return w.subscriptions(topic) > 0 })
	out := sinks.Recorder("out")
	out.FailNext(7, errors.New("partner busy"))
	const n = 300
	for i := 0; i < n; i++ {
		m := bus.Message{Key: fmt.Sprintf("p%d", i%30), Body: []byte(fmt.Sprintf(`{"person":"p%d","n":%d}`, i%30, i))}
		if err := b.Publish(context.Background(), topic, m); err != nil {
			t.Fatal(err)
		}
	}
	// Every message settled: delivered, or dead-lettered, and acked.
	w.wait(t, "every message acked", time.Minute, func() bool { return w.acked(topic) >= n })
	got := out.Got()
	seen := map[string]int{}
	last := map[string]int{}
	for _, m := range got {
		var p string
		var k int
		if _, err := fmt.Sscanf(string(m.Body), `{"n":%d,"person":"%s`, &k, &p); err != nil {
			t.Fatalf("body %s: %v", m.Body, err)
		}
		seen[m.IdempotencyKey]++
		if prev, ok := last[p]; ok && k < prev {
			t.Errorf("person %s: %d after %d (order per key broken)", p, k, prev)
		}
		last[p] = k
	}
	var dups []string
	for k, c := range seen {
		if c > 1 {
			dups = append(dups, k)
		}
	}
	sort.Strings(dups)
	if len(got) != n-1 || len(dups) > 0 {
		t.Fatalf("delivered %d (want %d), duplicates %v", len(got), n-1, dups)
	}
	// The dead letter is stored before its delivery is acked.
	if d, err := eng.DeadLetters().List(context.Background(), routes.ListFilter{}); err != nil || len(d) != 1 || d[0].Step == "" || d[0].Attempts != 1 {
		t.Fatalf("dead letters %+v (%v), want the one of record 13, refused by its step on the first attempt", d, err)
	}
}

// TestRouteOnLocalBus runs the keyed route on the embedded durable bus.
func TestRouteOnLocalBus(t *testing.T) {
	db := storetest.Open(t)
	b, err := local.Open(context.Background(), db, bus.DefaultConfig().Local, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	runRouteOnBus(t, b)
}

// TestIntegrationPulsarRoute runs the keyed route on Apache Pulsar
// (MZHUB_TEST_PULSAR, namespace mzhub/test).
func TestIntegrationPulsarRoute(t *testing.T) {
	u := os.Getenv("MZHUB_TEST_PULSAR")
	if u == "" {
		t.Skip("MZHUB_TEST_PULSAR not set: skipping the route on Pulsar (deploy/pulsar/start.sh starts a broker)")
	}
	admin := os.Getenv("MZHUB_TEST_PULSAR_ADMIN")
	if admin == "" {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		admin = "http://" + pu.Hostname() + ":8080"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pulsar.EnsureNamespace(ctx, nil, admin, "mzhub", "test", "standalone"); err != nil {
		t.Fatal(err)
	}
	cfg := bus.DefaultConfig().Pulsar
	cfg.URL, cfg.Namespace = u, "test"
	sfx := make([]byte, 4)
	_, _ = rand.Read(sfx)
	cfg.ProducerName = "routes-" + hex.EncodeToString(sfx)
	b, err := pulsar.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	runRouteOnBus(t, b)
}
