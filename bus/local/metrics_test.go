package local_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
)

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	b, err := local.Open(ctx, db, testConfig(), nil, local.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: "s", MaxDeliveries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "t", bus.Message{Body: []byte("1")}, bus.Message{Body: []byte("2")}, bus.Message{Body: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d, err := s.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			err = d.Ack(ctx)
		} else {
			err = d.Nack(ctx, 0, errors.New("boom")) // MaxDeliveries 1: dead letter
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP mzhub_bus_acked_total Deliveries acknowledged by consumers.
# TYPE mzhub_bus_acked_total counter
mzhub_bus_acked_total{bus="local",subscription="s",topic="t"} 2
# HELP mzhub_bus_dead_lettered_total Messages moved to a dead-letter topic after MaxDeliveries.
# TYPE mzhub_bus_dead_lettered_total counter
mzhub_bus_dead_lettered_total{bus="local",subscription="s",topic="t"} 1
# HELP mzhub_bus_nacked_total Deliveries returned for redelivery by consumers (Nack).
# TYPE mzhub_bus_nacked_total counter
mzhub_bus_nacked_total{bus="local",subscription="s",topic="t"} 1
# HELP mzhub_bus_pending_messages Messages not yet acknowledged, per subscription.
# TYPE mzhub_bus_pending_messages gauge
mzhub_bus_pending_messages{bus="local",subscription="s",topic="t"} 0
# HELP mzhub_bus_published_total Messages durably published on the bus.
# TYPE mzhub_bus_published_total counter
mzhub_bus_published_total{bus="local",topic="t"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"mzhub_bus_acked_total", "mzhub_bus_dead_lettered_total", "mzhub_bus_nacked_total",
		"mzhub_bus_pending_messages", "mzhub_bus_published_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "mzhub_bus_commit_seconds"); n != 1 {
		t.Errorf("commit histogram: %d series", n)
	}
}
