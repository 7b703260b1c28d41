package portal

import (
	"context"
	"fmt"
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
