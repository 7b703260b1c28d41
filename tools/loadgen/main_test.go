package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/config"
	_ "github.com/shanghai-mca/mzhub/connectors/all" // the http kind of the bench route
	"github.com/shanghai-mca/mzhub/routes"
)

// TestSetup: the written configuration loads and the bench route lints.
func TestSetup(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"-setup", dir}, &out); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "mzhub.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Paths.Routes != filepath.Join(dir, "routes") || len(cfg.Security.PartnerAPI.Partners) != 1 {
		t.Fatalf("config %+v", cfg.Paths)
	}
	if _, errs := routes.LoadDir(filepath.Join(dir, "routes")); len(errs) > 0 {
		t.Fatalf("bench route: %v", errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "partner", "bench.key")); err != nil {
		t.Fatal(err)
	}
}

// TestCeilingRun: a short run against the bare forwarder delivers every
// accepted message exactly once and says so.
func TestCeilingRun(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-conns", "2", "-duration", "200ms", "-settle", "30s", "-sink", "127.0.0.1:0"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "ceiling (bare forwarder)") || !strings.Contains(s, "errors=map[] ") ||
		!strings.Contains(s, "lost=0 duplicates=0 extra=0") || strings.Contains(s, " 2xx=0 ") ||
		!strings.Contains(s, " loadgen_cpu_per_req=") {
		t.Fatalf("output:\n%s", s)
	}
}

// TestOnlyLoopback: a target off this machine is refused.
func TestOnlyLoopback(t *testing.T) {
	if err := run([]string{"-target", "http://192.0.2.1:80/routes/x", "-sink", "127.0.0.1:0"}, &bytes.Buffer{}); err == nil {
		t.Fatal("a non-loopback target was accepted")
	}
}

// TestProcCPU: the CPU time read from /proc/PID/stat grows as the process
// works, and agrees with getrusage within the ticks' resolution.
func TestProcCPU(t *testing.T) {
	pid := os.Getpid()
	c0 := procCPU(pid)
	x := uint64(1)
	for procCPU(pid) < c0+100*time.Millisecond {
		for i := 0; i < 1_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if clock.ProcessCPU() > 30*time.Second {
			t.Fatalf("procCPU stays at %v after 30 s of CPU (x=%d)", procCPU(pid), x)
		}
	}
	if d := clock.ProcessCPU() - procCPU(pid); d < -50*time.Millisecond || d > 500*time.Millisecond {
		t.Errorf("getrusage %v, /proc %v: they should agree", clock.ProcessCPU(), procCPU(pid))
	}
	if procCPU(0) != 0 || procCPU(-1) != 0 {
		t.Error("no process, no CPU")
	}
}
