package hub_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/hrss/hrsssim"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/services/verification"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestIntegrationVerificationHRSSFrontEnd runs social security through the
// exchange-sharing platform's front-end tables in the whole hub, with the
// documented routes and DDL (docs/examples/routes/verification-hrss-frontend*)
// exactly as shipped, on a real PostgreSQL as the front-end database, and
// the shipped SOAP route beside them (held back by verification.hrss_via:
// frontend). The simulated platform (hrsssim.Platform) answers from the
// same population as the WebService: five households are written once each
// as request rows, answered, and final and complete with hrss's figures;
// one answer row written twice changes nothing; one late answer keeps its
// household partial until it comes; a malformed answer row rejects its
// call with the reason, never applied; a call published again (a restart)
// writes no second request row.
func TestIntegrationVerificationHRSSFrontEnd(t *testing.T) {
	dsn := os.Getenv("MZHUB_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping social security through the front-end tables (deploy/postgres/start.sh starts a server)")
	}
	ctx := context.Background()
	// A database of its own: the shipped files name schema qzj and keep
	// their watermark in mzhub_dbtable_state, as on a real front-end database.
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := storetest.Name("hrssfe")
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	feDSN := u.String()
	db, err := sql.Open("pgx", feDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ddl, err := os.ReadFile(filepath.Join("..", "docs", "examples", "routes", "verification-hrss-frontend.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(ddl)); err != nil {
		t.Fatalf("the shipped DDL: %v", err)
	}
	t.Setenv("MZHUB_HRSS_FRONTEND_DSN", feDSN)

	// The shipped verification routes and the two front-end routes, as they are.
	routeDir := filepath.Join(t.TempDir(), "routes")
	if err := os.MkdirAll(routeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shipped, _ := filepath.Glob(filepath.Join("..", "configs", "routes", "verification*.yaml"))
	examples, _ := filepath.Glob(filepath.Join("..", "docs", "examples", "routes", "verification-hrss-frontend-*.yaml"))
	if len(examples) != 2 {
		t.Fatalf("front-end routes: %v", examples)
	}
	for _, f := range append(shipped, examples...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(routeDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		c.Paths.Routes = routeDir
		// Social security alone, through the front-end tables.
		_ = os.Remove(filepath.Join(c.Paths.Partners, "villagebanks.yaml"))
		vc := verification.ConfigFrom(*c)
		vc.HRSSVia = verification.HRSSViaFrontEnd
		vc.HRSS.URL, vc.HPF.URL, vc.SAMR.URL, vc.Ministry.URL, vc.VillageBanks = "", "", "", "", ""
		vc.SampleRate, vc.ReportEvery, vc.Tick = 0, 0, 100*time.Millisecond
		if err := config.SetSection(c, verification.ConfigKey, vc); err != nil {
			t.Fatal(err)
		}
	}})
	svc := srv.Hub.Verification()

	platform := hrsssim.NewPlatform(db, "qzj.hrss_hdsq", "qzj.hrss_hdjg")
	pctx, stop := context.WithCancel(ctx)
	pdone := make(chan struct{})
	t.Cleanup(func() { stop(); <-pdone })
	go func() { defer close(pdone); platform.Run(pctx, 50*time.Millisecond) }()

	// One household first, its answer written twice.
	platform.DuplicateNext(1)
	members := map[string][]household.Member{}
	submit := func(i int) string {
		m := householdsim.Household(7000+i, false)
		id, _, err := svc.Submit(ctx, verification.Request{Reference: "FE-" + strconv.Itoa(i), Household: "HHFE" + strconv.Itoa(i), Authorization: "AUTH-FE-" + strconv.Itoa(i), Members: m})
		if err != nil {
			t.Fatal(err)
		}
		members[id] = m
		return id
	}
	dup := submit(0)
	waitResults(t, svc, []string{dup})
	// The routes ran (the engine starts them all under its lock, which
	// Skipped takes): the SOAP route was held back.
	if why := srv.Hub.Routes().Skipped()["verification-hrss"]; why != hub.HRSSFrontEndReason {
		t.Fatalf("the SOAP route: skipped %q", why)
	}
	var answerRows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM qzj.hrss_hdjg WHERE request_key = $1`, dup+":hrss").Scan(&answerRows); err != nil || answerRows != 2 {
		t.Fatalf("answer rows of the duplicated answer: %d (%v)", answerRows, err)
	}
	// Then one late, three on time.
	platform.Hold(householdsim.Household(7001, false)[0].IDNumber)
	late := submit(1)
	onTime := []string{submit(2), submit(3), submit(4)}
	waitResults(t, svc, onTime)
	if r, err := svc.Result(ctx, late); err != nil || r.Status != "partial" {
		t.Fatalf("the late household: %+v (%v)", r, err)
	}
	platform.Release()
	waitResults(t, svc, []string{late})
	// A malformed answer row.
	platform.MalformedNext(1)
	bad := submit(5)
	waitResults(t, svc, []string{bad})

	for id, m := range members {
		r, err := svc.Result(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Partners) != 1 || r.Partners[0].Partner != "hrss" {
			t.Fatalf("%s: partners %+v", id, r.Partners)
		}
		p := r.Partners[0]
		if id == bad {
			if p.State != verification.StateRejected || !strings.Contains(p.Reason, "not an amount") || r.Complete || len(factsOf(r)) != 0 {
				t.Fatalf("the malformed row's call: %+v, complete %v, facts %d", p, r.Complete, len(factsOf(r)))
			}
			continue
		}
		var want int64
		for _, mm := range m {
			pr := householdsim.Profile(mm.IDNumber)
			want += pr.PensionFen + pr.NursingFeeFen + pr.WageFen
		}
		if r.Status != "final" || !r.Complete || p.State != verification.StateAnswered || r.MonthlyIncomeFen != want || !strings.HasPrefix(p.PartnerRef, "HDJG") {
			t.Fatalf("%s: %s complete %v income %d want %d; %+v", id, r.Status, r.Complete, r.MonthlyIncomeFen, want, p)
		}
	}

	// A call published again (the service's restart path) under its key:
	// no second request row, nothing answered twice.
	republish := bus.Message{Key: dup, IdempotencyKey: dup + ":hrss", Body: []byte(`{"key":"` + dup + `:hrss","request_id":"` + dup + `","members":[]}`),
		Headers: map[string]string{household.HeaderPartner: "hrss", household.HeaderOp: household.OpAsk, household.HeaderCall: dup + ":hrss"}}
	if err := srv.Hub.Bus().Publish(ctx, verification.TopicAskHRSS, republish); err != nil {
		t.Fatal(err)
	}
	// A marker call after it: once its row is there, the republished one was handled.
	marker := submit(6)
	waitResults(t, svc, []string{marker})
	var rows, keys, untaken int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT request_key) FROM qzj.hrss_hdsq`).Scan(&rows, &keys); err != nil || rows != len(members) || keys != rows {
		t.Fatalf("request rows %d, keys %d, households %d (%v)", rows, keys, len(members), err)
	}
	// A batch is marked taken as it commits, after its hand-over (the
	// answer may be applied first); the source's received event follows
	// the commit.
	bound := time.After(60 * time.Second)
	for {
		stored := srv.Hub.Monitor().Writer().Stored()
		if err := db.QueryRow(`SELECT COUNT(*) FROM qzj.hrss_hdjg WHERE mzhub_taken_at IS NULL`).Scan(&untaken); err != nil {
			t.Fatal(err)
		}
		if untaken == 0 {
			break
		}
		select {
		case <-stored:
		case <-bound:
			t.Fatalf("%d answer rows not taken", untaken)
		}
	}
	if r, _ := svc.Result(ctx, dup); r.Partners[0].State != verification.StateAnswered || r.Partners[0].Asks != 1 {
		t.Fatalf("the duplicated household after the resend: %+v", r.Partners)
	}
}

func factsOf(r verification.Result) []verification.FactResult {
	var out []verification.FactResult
	for _, m := range r.Members {
		out = append(out, m.Facts...)
	}
	return out
}

// waitResults waits, on the service's signal, until every id is final.
func waitResults(t *testing.T, svc *verification.Service, ids []string) {
	t.Helper()
	late := time.After(90 * time.Second)
	for {
		ch := svc.Changed()
		final := 0
		for _, id := range ids {
			r, err := svc.Result(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == "final" {
				final++
			}
		}
		if final == len(ids) {
			return
		}
		select {
		case <-ch:
		case <-late:
			t.Fatalf("%d of %d requests final", final, len(ids))
		}
	}
}

// TestVerificationHRSSFrontEndRoutesLint checks the documented front-end
// routes as shipped, without a database: each file lints clean (connector
// configs, steps, expressions).
func TestVerificationHRSSFrontEndRoutesLint(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "docs", "examples", "routes", "verification-hrss-frontend-*.yaml"))
	if len(files) != 2 {
		t.Fatalf("front-end routes: %v", files)
	}
	for _, f := range files {
		if errs := routes.LintFile(f); len(errs) > 0 {
			t.Errorf("%s: %v", f, errs)
		}
	}
}
