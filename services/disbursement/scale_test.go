package disbursement

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
)

// TestIntegrationFullScale runs the whole cycle for MZHUB_TEST_DISB_PERSONS
// persons (4400000 for the figure in docs/performance.md) across the six
// simulated banks over loopback SFTP, and reports the time of each stage
// and the peak RSS of the process (simulators included).
func TestIntegrationFullScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MZHUB_TEST_DISB_PERSONS"))
	if n <= 0 {
		t.Skip("MZHUB_TEST_DISB_PERSONS not set: skipping the full-scale disbursement run (e.g. 4400000)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if d := os.Getenv("MZHUB_TEST_DISB_DIR"); d != "" {
		dir = d
	}
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 0
	opts.PollEvery = 100 * time.Millisecond
	sims := startSims(t, filepath.Join(dir, "sim"), opts)
	svc := newServiceTimeout(t, openDB(t, dir), dir, simConfigs(sims), nil, nil, 30*time.Second)
	svc.cfg.PollEvery = 100 * time.Millisecond
	svc.cfg.ReturnWait = 10 * time.Minute
	t0 := time.Now()
	list := writeList(t, dir, GenerateOptions{Persons: n, Seed: 11, Period: "2026-11"})
	gen := time.Since(t0)
	var letter int64
	_ = readList(list, func(_ int64, r *listRecord) error { letter += r.amount(); return nil })
	start := time.Now()
	b, err := svc.Run(ctx, RunOptions{Period: "2026-11", ListFile: list, LetterTotal: letter, ConfirmDistrict: "alice", ConfirmCity: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	st, err := svc.Status(ctx, bank.Disbursement, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "persons %d, list generated in %s (not counted)\n", n, gen.Round(time.Millisecond))
	for _, s := range st.Stages {
		fmt.Fprintf(&sb, "  %-12s %8.2fs  %s\n", s.Stage, float64(s.EndedMs-s.StartedMs)/1000, s.Detail)
	}
	cpu := clock.ProcessCPU()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&sb, "full cycle %.1fs wall, %.1fs CPU (process, list generation included), peak RSS %s, load average %s, counts %v\n",
		total.Seconds(), cpu.Seconds(), peakRSS(), strings.Join(strings.Fields(string(load))[:3], " "), st.Counts)
	t.Log("\n" + sb.String())
	var simPaid int64
	for _, s := range sims {
		simPaid += s.Paid.Total()
		if s.Paid.Double() != 0 {
			t.Errorf("%s paid twice", s.Config.Code)
		}
	}
	if b.Stage != StageDone || st.Counts["paid"] != simPaid || st.Counts["sent"] != 0 || st.Counts["missing"] != 0 {
		t.Fatalf("cycle incomplete: %v, simulators paid %d", st.Counts, simPaid)
	}
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "n/a"
}
