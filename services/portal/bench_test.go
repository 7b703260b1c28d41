package portal

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// portalRate is the rate limit the benchmark's portal enforces per
// interface (calls per second; over it the simulator answers 429), and the
// rate the hub's client keeps to: the shipped default.
const portalRate = 20

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func benchEnv(b *testing.B, consent int) *env {
	e := newEnv(b, joblibsim.Options{RatePerSecond: portalRate, ConsentPercent: consent}, func(c *Config) {
		c.JobLib.RatePerSecond, c.JobLib.RateBurst = portalRate, 1
		c.Mianshen.RatePerSecond, c.Mianshen.RateBurst = portalRate, 1
		c.SendBatch, c.PushBatch = 500, 1000
	})
	e.patience = 30 * time.Minute // a bound for a month's run, not a target
	return e
}

// BenchmarkMonthPush200k: a month's 免申即享 push of 200,000 newly
// eligible persons: the business system's register taken from the inbox
// (ID numbers sealed, blind-indexed), planned into batches of 1,000 and
// pushed within the portal's rate limit. Run with -benchtime=1x.
func BenchmarkMonthPush200k(b *testing.B) {
	const persons = 200000
	for range b.N {
		b.StopTimer()
		e := benchEnv(b, 1) // 1% consent: the push is what is measured
		g := synth.New(2026)
		e.drop("eligible-MZ-LNZHJT-2026-12.csv", func(w io.Writer) error {
			recs := make([]EligibleRecord, 0, persons)
			for range persons {
				p := g.Next()
				recs = append(recs, NewEligible(p.ID, p.Name, p.Division, "shanghai", 0, ""))
			}
			return WriteEligible(w, recs)
		})
		ctx := context.Background()
		b.StartTimer()
		start, cpu0 := time.Now(), clock.ProcessCPU().Nanoseconds()
		if err := e.exclusive(func() error { return e.svc.scanInbox(ctx) }); err != nil {
			b.Fatal(err)
		}
		intake := time.Since(start)
		if err := e.exclusive(func() error { return e.svc.planPushes(ctx) }); err != nil {
			b.Fatal(err)
		}
		planned := time.Since(start)
		if err := e.exclusive(func() error { return e.svc.drainKind(ctx, e.svc.senders()[1]) }); err != nil {
			b.Fatal(err)
		}
		// The route delivers the batches and answers each.
		e.waitFor("the push delivered", func() bool { return e.sim.Pushed("MZ-LNZHJT") == persons && e.settled() })
		total := time.Since(start)
		b.StopTimer()
		calls, limited, _ := e.sim.Stats()
		if got := e.sim.Pushed("MZ-LNZHJT"); got != persons || limited != 0 || e.sim.Duplicates.Load() != 0 {
			b.Fatalf("pushed %d of %d, %d calls over the rate limit, %d duplicates", got, persons, limited, e.sim.Duplicates.Load())
		}
		b.ReportMetric(total.Seconds(), "s/month")
		b.ReportMetric(float64(persons)/total.Seconds(), "persons/s")
		b.Logf("200,000 persons: register intake %s, batches planned %s, pushed %s; %d calls at %d/s, 0 over the limit; CPU %.1f s (hub and simulator); load average %s",
			intake.Round(time.Millisecond), (planned - intake).Round(time.Millisecond), (total - planned).Round(time.Millisecond), calls, portalRate,
			float64(clock.ProcessCPU().Nanoseconds()-cpu0)/1e9, loadavg())
	}
}

// BenchmarkStatus50k: the status updates of 50,000 applications: fetched
// from the job library (pages of 1,000), pre-reviewed, the business
// system's 受理/办理/办结 taken from one status file, and every node
// (200,000) pushed in order per application within the portal's rate
// limit. Run with -benchtime=1x.
func BenchmarkStatus50k(b *testing.B) {
	const apps = 50000
	for range b.N {
		b.StopTimer()
		e := benchEnv(b, 0)
		ids := e.sim.AddApplications(apps)
		ctx := context.Background()
		b.StartTimer()
		start, cpu0 := time.Now(), clock.ProcessCPU().Nanoseconds()
		// The route pulls the applications; the service takes them.
		e.waitFor("the applications taken", func() bool { return e.count(`SELECT COUNT(*) FROM portal_applications`) == apps })
		fetched := time.Since(start)
		var lines [][]string
		for i, id := range ids {
			if joblibsim.Items[i%len(joblibsim.Items)].Code == "MZ-JZZM" {
				continue // answered by the hub itself
			}
			lines = append(lines, []string{id, joblib.NodeAccepted, joblib.ResultAccepted, "", "", ""},
				[]string{id, joblib.NodeProcessing, "", "", "", ""},
				[]string{id, joblib.NodeDone, joblib.ResultApproved, "准予", "", ""})
		}
		e.drop("status-bench.csv", func(w io.Writer) error { return WriteStatus(w, lines) })
		if err := e.exclusive(func() error { return e.svc.scanInbox(ctx) }); err != nil {
			b.Fatal(err)
		}
		taken := time.Since(start)
		if err := e.exclusive(func() error { return e.svc.drainKind(ctx, e.svc.senders()[0]) }); err != nil {
			b.Fatal(err)
		}
		e.waitFor("the nodes delivered", func() bool { return e.sim.NodeCount() == 4*apps && e.settled() })
		total := time.Since(start)
		b.StopTimer()
		calls, limited, _ := e.sim.Stats()
		nodes := e.sim.NodeCount()
		if nodes != 4*apps || limited != 0 || e.sim.Duplicates.Load() != 0 || !e.settled() {
			b.Fatalf("%d nodes at the portal (want %d), %d calls over the rate limit, %d duplicates", nodes, 4*apps, limited, e.sim.Duplicates.Load())
		}
		b.ReportMetric(total.Seconds(), "s/run")
		b.ReportMetric(float64(nodes)/total.Seconds(), "nodes/s")
		b.Logf("50,000 applications, %d nodes: fetched and pre-reviewed %s, status file taken %s, nodes pushed %s; %d calls at %d/s, 0 over the limit; CPU %.1f s (hub and simulator); load average %s",
			nodes, fetched.Round(time.Millisecond), (taken - fetched).Round(time.Millisecond), (total - taken).Round(time.Millisecond), calls, portalRate,
			float64(clock.ProcessCPU().Nanoseconds()-cpu0)/1e9, loadavg())
	}
}
