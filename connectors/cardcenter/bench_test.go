package cardcenter_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter/cardcentersim"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// BenchmarkStatus4M asks the card status of 4,400,000 persons (a payment
// month's list) from the simulated card center over loopback HTTP, as the
// screening does: batches of 1,000 (the card center's limit), 8 in
// flight, within its rate limit of 50 requests per second (the shipped
// defaults). Target: ≤ 120 s. The persons come from the synthetic list
// generator; every 1,000th card is lost.
func BenchmarkStatus4M(b *testing.B) {
	n := 4_400_000
	if s := os.Getenv("MZHUB_BENCH_PERSONS"); s != "" {
		n = atoi(s)
	}
	sim := cardcentersim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	g := synth.New(1)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = g.Next().ID
		if i%1000 == 0 {
			sim.SetStatus(ids[i], cardcenter.StatusLost)
		}
	}
	cfg := cardcenter.DefaultConfig()
	cfg.URL = sim.URL()
	q, err := cardcenter.NewStatusClient(cfg, connectors.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wall, cpu time.Duration
	for i := 0; i < b.N; i++ {
		start, c0 := time.Now(), clock.ProcessCPU()
		got, err := q.Query(context.Background(), ids)
		wall += time.Since(start)
		cpu += clock.ProcessCPU() - c0
		if err != nil || len(got) != len(ids) {
			b.Fatalf("%d statuses: %v", len(got), err)
		}
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/query")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/query")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average %s", strings.Join(strings.Fields(string(la))[:3], " "))
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
