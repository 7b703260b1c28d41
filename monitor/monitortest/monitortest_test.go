package monitortest_test

import (
	"testing"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
)

func TestNextSeesOnlyLaterMatches(t *testing.T) {
	r := &monitortest.Recorder{}
	r.Emit(monitor.Event{Type: monitor.Retried, Partner: "bank.ccb"})
	next := r.Next(func(e monitor.Event) bool { return e.Type == monitor.Retried })
	select {
	case <-next:
		t.Fatal("an event recorded before Next counted")
	default:
	}
	r.Emit(monitor.Event{Type: monitor.Sent, Partner: "bank.ccb"})
	r.Emit(monitor.Event{Type: monitor.Retried, Partner: "bank.boc"})
	r.Emit(monitor.Event{Type: monitor.Retried, Partner: "bank.cmb"})
	select {
	case e := <-next:
		if e.Partner != "bank.boc" {
			t.Errorf("got the event of %s, want the first match (bank.boc)", e.Partner)
		}
	default:
		t.Fatal("a matching event did not reach Next")
	}
	if n := r.CountType(monitor.Retried); n != 3 {
		t.Errorf("recorded %d retried events, want 3", n)
	}
}
