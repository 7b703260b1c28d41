package monitor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/monitor"
)

func TestStepFailed(t *testing.T) {
	ev, ok := monitor.StepFailed("bank.boc", "account-open", "send", errors.New("database is locked, person 310104197001011234"))
	if !ok || ev.Type != monitor.Failed || ev.Status != monitor.Error || ev.Direction != monitor.Internal || ev.Partner != "bank.boc" ||
		ev.Flow != "account-open" || ev.ErrorClass != "internal" || ev.ErrorCode != monitor.ErrCodeStepFailed ||
		!strings.HasPrefix(ev.ErrorMessage, "send: database is locked") || strings.Contains(ev.ErrorMessage, "310104197001011234") {
		t.Fatalf("step failed: %+v %v", ev, ok)
	}
	for name, err := range map[string]error{
		"nil":     nil,
		"marked":  monitor.Reported(errors.New("upload failed")),
		"wrapped": fmt.Errorf("bank boc: %w", monitor.Reported(errors.New("upload failed"))),
		"joined":  errors.Join(monitor.Reported(errors.New("file failed"))),
	} {
		if ev, ok := monitor.StepFailed("p", "f", "s", err); ok {
			t.Errorf("%s: reported again: %+v", name, ev)
		}
	}
	if monitor.Reported(nil) != nil {
		t.Error("Reported(nil) is not nil")
	}
	base := errors.New("bus down")
	if r := monitor.Reported(base); !errors.Is(r, base) || r.Error() != "bus down" {
		t.Errorf("Reported hides its error: %v", r)
	}
}
