package routes_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// floodSource emits as fast as emit lets it and counts what was accepted.
// It stops after floodLimit messages: far more than a route with back
// pressure lets through in the test, and a bound so that without back
// pressure the test fails at once instead of spinning (in a synctest
// bubble a goroutine that never blocks keeps the fake clock from moving).
type floodSource struct{ emitted *atomic.Int64 }

const floodLimit = 10_000

func (f floodSource) Run(ctx context.Context, emit connectors.Emit) error {
	for i := 0; ctx.Err() == nil && i < floodLimit; i++ {
		if err := emit(ctx, bus.Message{IdempotencyKey: "m" + strconv.Itoa(i), Body: []byte(`{}`)}); err != nil {
			return nil
		}
		f.emitted.Add(1)
	}
	return nil
}

// TestBackPressure: a slow sink slows the source down to the sink's pace
// plus the route's backlog bound; the source is not allowed to run ahead.
// It runs in a testing/synctest bubble: the sink's delay and the 1.5 s of
// running are fake time, and the counts are read with the route idle.
func TestBackPressure(t *testing.T) { synctest.Test(t, testBackPressure) }

func testBackPressure(t *testing.T) {
	sinks := routetest.NewSinks()
	reg := sinks.Registry()
	var emitted atomic.Int64
	_ = reg.Register(connectors.Spec{
		Name: "flood",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return &struct{}{} },
			New:       func(any, connectors.Deps) (connectors.Source, error) { return floodSource{&emitted}, nil },
		},
	})
	dir := t.TempDir()
	route := `id: bp
from: {kind: flood}
concurrency: 2
max_backlog: 50
to:
  - kind: record
    config: {name: slow}
`
	if err := os.WriteFile(filepath.Join(dir, "bp.yaml"), []byte(route), 0o600); err != nil {
		t.Fatal(err)
	}
	slow := sinks.Recorder("slow")
	slow.Delay = 10 * time.Millisecond // 2 workers: at most ~200 messages/s
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: routetest.NewBus(), Store: storetest.Open(t), Connectors: reg, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	elapse(1500 * time.Millisecond)
	em, got := emitted.Load(), int64(len(slow.Got()))
	cancel()
	<-done
	if got == 0 {
		t.Fatal("nothing delivered")
	}
	// Without back pressure the flood source emits hundreds of thousands
	// of messages in this time.
	if em > got+50+2 {
		t.Fatalf("source emitted %d while the sink took %d: more than the backlog of 50 ahead", em, got)
	}
	t.Logf("emitted %d, delivered %d", em, got)
}
