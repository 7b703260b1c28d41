package portal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestWaitingApplicationsAreExpected: an application that waits for its
// item's first register is not left waiting unseen. The monitor's
// expectation tracker (the real one, over a real event store fed with the
// service's events) expects the register from the application's arrival,
// due portal.register_wait later: met by the register that answers the
// application, missed (an alert) when none comes.
func TestWaitingApplicationsAreExpected(t *testing.T) {
	for _, registerComes := range []bool{true, false} {
		t.Run(fmt.Sprintf("register=%v", registerComes), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, joblibsim.Options{}, nil)
			mon := monitortest.NewExpectations(t, storetest.Open(t), e.clk)
			tr, al := mon.Tracker, mon.Alerts
			e.svc.d.Expect = tr

			arrived := e.clk.Now()
			who := idFor("310110", "19800101", 1)
			e.sim.AddApplication(application("SBJZ00000011", "MZ-JZZM", joblib.ChannelWeb, who, "310110"))
			e.sim.AddApplication(application("SBJZ00000012", "MZ-JZZM", joblib.ChannelWeb, idFor("310110", "19800101", 2), "310110"))
			if err := e.round(); err != nil {
				t.Fatal(err)
			}
			list, err := tr.Between(ctx, arrived, arrived.Add(24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 {
				t.Fatalf("expectations after two waiting applications: %+v, want one for the item", list)
			}
			x := list[0]
			if x.Name != RegisterExpectation("MZ-JZZM") || x.Partner != PartnerBusiness || x.Flow != FlowInbox ||
				x.Due.Sub(x.From) != e.cfg.RegisterWait || x.From.Before(arrived) || x.From.After(e.clk.Now()) {
				t.Fatalf("expectation %+v", x)
			}
			if registerComes {
				e.clk.Advance(30 * time.Minute)
				e.register("MZ-JZZM", "2026-12", []EligibleRecord{NewEligible(who, "孙杰", "310110", "shanghai", 0, "dibao")})
				if err := e.round(); err != nil {
					t.Fatal(err)
				}
				if n := e.sim.Nodes("SBJZ00000011"); len(n) != 4 || n[3].Result != joblib.ResultApproved {
					t.Fatalf("after the register: %+v", n)
				}
			}
			// The service's events reach the event store as the hub's
			// monitor writer would store them.
			e.events.mu.Lock()
			evs := append([]monitor.Event(nil), e.events.evs...)
			e.events.mu.Unlock()
			mon.Store(t, evs...)
			e.clk.Set(x.Due.Add(time.Second))
			if err := tr.Check(ctx); err != nil {
				t.Fatal(err)
			}
			list, err = tr.Between(ctx, arrived, arrived.Add(24*time.Hour))
			if err != nil || len(list) != 1 {
				t.Fatalf("expectations %+v, %v", list, err)
			}
			want := monitor.ExpectMissed
			if registerComes {
				want = monitor.ExpectMet
			}
			if list[0].State != want {
				t.Fatalf("expectation %s, want %s", list[0].State, want)
			}
			if registerComes != (len(al.List()) == 0) {
				t.Fatalf("alerts %+v", al.List())
			}
			if !registerComes && (al.List()[0].Partner != PartnerBusiness || al.List()[0].Severity != monitor.SevCritical) {
				t.Fatalf("alert %+v", al.List()[0])
			}
		})
	}
}

// downExpecter refuses registrations while down (the monitor's database
// unreachable for a moment), counting them.
type downExpecter struct {
	Expecter
	down    atomic.Bool
	refused atomic.Int32
}

func (d *downExpecter) Expect(ctx context.Context, e monitor.Expectation) error {
	if d.down.Load() {
		d.refused.Add(1)
		return errors.New("monitor store down")
	}
	return d.Expecter.Expect(ctx, e)
}

// TestFailedRegisterExpectationIsMadeNextRound: when the expectation
// cannot be registered right after the application's commit, the next
// round registers it, counting from the application's arrival.
func TestFailedRegisterExpectationIsMadeNextRound(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, joblibsim.Options{}, nil)
	mon := monitortest.NewExpectations(t, storetest.Open(t), e.clk)
	dx := &downExpecter{Expecter: mon.Tracker}
	dx.down.Store(true)
	e.svc.d.Expect = dx
	arrived := e.clk.Now()
	e.sim.AddApplication(application("SBJZ00000021", "MZ-JZZM", joblib.ChannelWeb, idFor("310110", "19800101", 3), "310110"))
	// The refusal comes after the application's commit, or in the
	// round's own step when the feed delivered it before that step.
	if err := e.round(); err != nil && !strings.Contains(err.Error(), "monitor store down") {
		t.Fatal(err)
	}
	if dx.refused.Load() == 0 {
		t.Fatal("the waiting application did not try to register the expectation")
	}
	if list, err := mon.Between(ctx, arrived, arrived.Add(24*time.Hour)); err != nil || len(list) != 0 {
		t.Fatalf("expectations while the monitor was down: %+v, %v", list, err)
	}
	dx.down.Store(false)
	if err := e.round(); err != nil {
		t.Fatal(err)
	}
	list, err := mon.Between(ctx, arrived, arrived.Add(24*time.Hour))
	if err != nil || len(list) != 1 || list[0].Name != RegisterExpectation("MZ-JZZM") || list[0].From.Before(arrived) || list[0].From.After(arrived.Add(time.Minute)) {
		t.Fatalf("expectations after the next round: %+v, %v", list, err)
	}
}
