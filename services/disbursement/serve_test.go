package disbursement

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
)

// TestSubmitWithARunnerScanning: requests arrive while the cycle runner
// scans without pause. A batch a request is still creating (list not yet
// copied in) must never be started: each must reach the letter-total wait
// with its intake done once, none failed, no intake error event. Without
// the new status, the runner could start the intake before the list was in
// place and fail the batch.
func TestSubmitWithARunnerScanning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	sims := startSims(t, filepath.Join(dir, "sim"), banksim.DefaultOptions())
	events := &monitortest.Recorder{}
	aud := &audittest.Recorder{}
	svc := newService(t, openDB(t, dir), dir, simConfigs(sims), events, aud)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, time.Microsecond) }()

	const n = 12
	for i := range n {
		period := fmt.Sprintf("2025-%02d", i+1)
		list := writeList(t, t.TempDir(), GenerateOptions{Persons: 50, Seed: uint64(i + 1), Period: period})
		if _, err := svc.Submit(ctx, Request{Period: period, ListFile: list, Actor: "user:test"}); err != nil {
			t.Fatal(err)
		}
	}
	late := time.After(60 * time.Second)
	for i := range n {
		period := fmt.Sprintf("2025-%02d", i+1)
		for {
			changed := svc.Changed()
			b, err := svc.Batch(ctx, bank.Disbursement, period)
			if err != nil {
				t.Fatal(err)
			}
			if b.Status == BatchFailed {
				t.Fatalf("%s failed at %s: %s", b.Name, b.Stage, b.Error)
			}
			if b.Status == BatchAwaitingLetter {
				break
			}
			select {
			case <-changed:
			case <-late:
				t.Fatalf("%s never reached the letter-total wait: %+v", b.Name, b)
			}
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if c := events.Count(func(e monitor.Event) bool { return e.Status == monitor.Error }); c != 0 {
		t.Fatalf("%d error events while requests were submitted", c)
	}
}
