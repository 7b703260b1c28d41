package allowance_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/cardcenter/cardcentersim"
)

// TestSIGKILLCardCenterPull kills the hub's side (SIGKILL) in the middle of
// the card center's pulls — the shipped cardcenter routes pulling the
// applications (申领) and production (制卡) feeds onto the durable local
// bus, applied by the card center's consumer into the allowance service —
// at random pages, four times, and then lets it finish: every application
// is stored once and ends at the card center's final stage (every step
// applied; the repeated items of the simulator's pages, the steps reported
// out of order and the steps redelivered while their application waited
// change nothing), nothing is quarantined, and each restart resumed each
// feed from the cursor the killed run stored, never from an earlier one.
//
// Nothing is pushed to the card center: the hub only pulls its feeds and
// asks card statuses (a query, POST /api/v1/card-status, which changes
// nothing there), so there is no push to kill.
func TestSIGKILLCardCenterPull(t *testing.T) {
	h := newKillHarness(t)
	sim := cardcentersim.New()
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	// About 60 pages of applications and 90 of production steps; under
	// -race each apply is some ten times slower, so the day is smaller.
	n, pageSize := 6000, 100
	if raceEnabled {
		n, pageSize = 1200, 20
	}
	apps := cardcentersim.Generate(n, 21, "2026-12-01", 1)
	steps, final := cardcentersim.Production(apps, 21, "2026-12-01")
	sim.AddApplications(apps...)
	sim.AddProgress(steps...)
	sim.Faults.Duplicates.Store(true)
	rank := map[string]int{"applied": 0, "accepted": 1, "produced": 2, "issued": 3}
	wantStages := 0
	for _, s := range final {
		wantStages += rank[s]
	}
	spec := childSpec{URL: sim.URL(), Mode: "cardpull", Want: len(apps), WantStages: wantStages, PageSize: pageSize}
	// Progress: each application stored and each step that moved one.
	const progress = `SELECT COUNT(*) + COALESCE(SUM(` + stageRank + `), 0) FROM allow_applications`
	feeds := []string{"applications", "production"} // the cursors' names: the API's paths
	type restart struct {
		asked  map[string]int    // cursors asked of each feed before the restart
		stored map[string]string // cursors stored by the killed run
	}
	var restarts []restart
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	pages, applied := int64(0), 0
	for range 4 {
		// Killed after a random number of further pages (1..12 of about 150).
		applied = h.killMidPull(h.run(spec), 1+r.IntN(12), sim.NextPage, progress, applied)
		if sim.Pages() <= pages {
			t.Fatal("the killed pull made no progress")
		}
		pages = sim.Pages()
		rs := restart{asked: map[string]int{}, stored: map[string]string{}}
		for _, f := range feeds {
			rs.asked[f] = len(sim.Cursors(f))
			rs.stored[f] = cursor(t, h, f)
		}
		restarts = append(restarts, rs)
	}
	if applied >= len(apps)+wantStages {
		t.Fatalf("after the kills %d of %d applied: not killed mid-pull", applied, len(apps)+wantStages)
	}
	if last := restarts[len(restarts)-1]; last.stored["applications"] == "" {
		t.Fatal("no applications cursor stored by the killed runs: resumption not tested")
	}
	if err := h.run(spec).Wait(); err != nil {
		t.Fatalf("resumed pull: %v\n%s", err, h.log())
	}
	if !strings.Contains(h.log(), "PASS") {
		t.Fatalf("child log:\n%s", h.log())
	}

	// Every application once, at its final stage; nothing quarantined.
	db := h.state()
	rows, err := db.Query(`SELECT app_id, stage FROM allow_applications`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var id, stage string
		if err := rows.Scan(&id, &stage); err != nil {
			t.Fatal(err)
		}
		got[id] = stage
	}
	rows.Close()
	wrong := 0
	for id, want := range final {
		if got[id] != want {
			if wrong++; wrong <= 5 {
				t.Errorf("application %s: stage %q, want %q", id, got[id], want)
			}
		}
	}
	if len(got) != len(apps) || wrong > 0 {
		t.Fatalf("%d applications stored of %d, %d at a wrong stage", len(got), len(apps), wrong)
	}
	yikatong := map[string]bool{}
	for _, a := range apps {
		if a.Yikatong {
			yikatong[a.IDNumber] = true
		}
	}
	if k := h.count(`SELECT COUNT(*) FROM allow_yikatong`); k != len(yikatong) {
		t.Fatalf("%d 一卡通 accounts stored, want %d", k, len(yikatong))
	}
	if k := h.count(`SELECT COUNT(*) FROM allow_quarantine WHERE source = 'cardcenter'`); k != 0 {
		t.Fatalf("%d card center records quarantined", k)
	}

	// Each feed drained, and each restart resumed from the stored cursor.
	total := map[string]int{"applications": len(apps), "production": len(steps)}
	for _, f := range feeds {
		if c := cursor(t, h, f); c != strconv.Itoa(total[f]) {
			t.Fatalf("feed %s: cursor %q at the end, want %d", f, c, total[f])
		}
		asked := sim.Cursors(f)
		for i, rs := range restarts {
			// The cursors asked after the kill: by the restarted run, and
			// perhaps one sent by the killed run before it died (not
			// answered, so the stored cursor itself).
			after := asked[rs.asked[f]:]
			if len(after) == 0 || !slices.Contains(after, rs.stored[f]) {
				t.Fatalf("feed %s, restart %d: cursor %q stored, not asked after the restart (asked %v…)", f, i+1, rs.stored[f], after[:min(len(after), 5)])
			}
			for _, c := range after {
				if num(c) < num(rs.stored[f]) {
					t.Fatalf("feed %s, restart %d: cursor %q asked after %q was stored: pulled again from before the cursor", f, i+1, c, rs.stored[f])
				}
			}
		}
	}
}

// cursor returns the cursor the child stored for a feed ("" none).
func cursor(t *testing.T, h *killHarness, feed string) string {
	t.Helper()
	db := h.state()
	if db == nil {
		return ""
	}
	var c string
	_ = db.QueryRow(db.Rebind(`SELECT cursor FROM cardcenter_cursors WHERE feed = ?`), feed).Scan(&c)
	return c
}

// num is a simulator cursor's offset ("" the start).
func num(c string) int { n, _ := strconv.Atoi(c); return n }
