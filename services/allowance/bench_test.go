package allowance_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
)

// BenchmarkDayPull is a day's pull of 50,000 death and move records (the
// target: applied in ≤ 10 s): the platform simulator serves them over
// loopback HTTP in pages of 500, the puller decodes and checks each
// record, the allowance rules apply them (blind index, sealed ID, record,
// stop or review) into a fresh SQLite state file, page by page with the
// cursor stored after each. One op is one whole pull; it reports wall
// seconds, CPU seconds and records per second, and logs the load average.
func BenchmarkDayPull(b *testing.B) {
	const n = 50_000
	ctx := context.Background()
	sim := dataseasim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	sim.Add(dataseasim.Generate(n, 1, "2026-12-01", 1)...)
	var wall, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := openFile(b, filepath.Join(b.TempDir(), "state.db"))
		al, _ := newService(b, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
		if err := datasea.Migrate(ctx, db); err != nil {
			b.Fatal(err)
		}
		cfg := datasea.DefaultConfig()
		cfg.URL = sim.URL()
		cfg.Client = httpx.ClientConfig{Timeout: time.Minute}
		p, err := datasea.NewPuller(cfg, connectors.Deps{Store: db})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, c0 := time.Now(), clock.ProcessCPU()
		res, err := pullInto(ctx, p, al)
		wall += time.Since(start)
		cpu += clock.ProcessCPU() - c0
		if err != nil || res.New != n {
			b.Fatalf("pull: %+v %v", res, err)
		}
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/pull")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/pull")
	b.ReportMetric(float64(n*b.N)/wall.Seconds(), "records/s")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average %s", strings.Join(strings.Fields(string(la))[:3], " "))
	}
}

// BenchmarkDayPullRoutes is BenchmarkDayPull the way the hub runs it: the
// shipped datasea routes pull onto the durable local bus with its shipped
// configuration (bus.DefaultConfig), straight onto datasea.records (a
// route with no steps and a bus sink), and the consumer applies the
// deliveries at hand together. One op is the whole day applied;
// MZHUB_BENCH_DATASEA_RECORDS sets the day's size (default 50,000).
func BenchmarkDayPullRoutes(b *testing.B) {
	n := 50_000
	if s := os.Getenv("MZHUB_BENCH_DATASEA_RECORDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	sim := dataseasim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	sim.Add(dataseasim.Generate(n, 1, "2026-12-01", 1)...)
	var wall, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := openFile(b, filepath.Join(b.TempDir(), "state.db"))
		al, _ := newService(b, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
		if err := datasea.Migrate(ctx, db); err != nil {
			b.Fatal(err)
		}
		cfg := datasea.DefaultConfig()
		cfg.URL = sim.URL()
		cfg.Client = httpx.ClientConfig{Timeout: time.Minute}
		b.StartTimer()
		start, c0 := time.Now(), clock.ProcessCPU()
		runRoutes(b, db, cfg, bus.DefaultConfig().Local, al, n)
		wall += time.Since(start)
		cpu += clock.ProcessCPU() - c0
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/pull")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/pull")
	b.ReportMetric(float64(n*b.N)/wall.Seconds(), "records/s")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average %s", strings.Join(strings.Fields(string(la))[:3], " "))
	}
}
