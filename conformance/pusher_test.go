package conformance

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
	"github.com/shanghai-mca/mzhub/security/access/accesstest"
	"github.com/shanghai-mca/mzhub/services/funeral"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func TestPusher(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		reg, err := funeral.NewRegistry([]funeral.Partner{
			{ID: "funeral.fh01", Name: "模拟殡仪馆01", Role: funeral.RoleFuneralHome, Environments: []string{"sandbox"}, AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{"fh01-k1"}},
			{ID: "funeral.fh02", Name: "模拟殡仪馆02", Role: funeral.RoleFuneralHome, Environments: []string{"sandbox"}, AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{"fh02-k1"}},
			{ID: "cemetery.cm01", Name: "模拟公墓01", Role: funeral.RoleCemetery, Environments: []string{"sandbox"}, AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{"cm01-k1"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		cfg := funeral.DefaultConfig()
		cfg.Environment, cfg.RatePerSecond = "sandbox", 0
		api, err := funeral.NewAPI(ctx, cfg, funeral.Deps{Store: db, Partners: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer api.Close(ctx)
		guard := accesstest.Guard(t, accesstest.Options{Partners: reg.AccessRules(funeral.EnvSandbox),
			Secret: func(k string) []byte { return []byte("s-" + k) }})
		hub := httptest.NewServer(guard.Middleware(api))
		defer hub.Close()

		// fh01 exercises everything; fh02 only pushes its data once.
		full, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: 1, Push: funeralhomesim.Credentials{KeyID: "fh01-k1", Secret: []byte("s-fh01-k1")}})
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close(ctx)
		partial, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: 2, Push: funeralhomesim.Credentials{KeyID: "fh02-k1", Secret: []byte("s-fh02-k1")}})
		if err != nil {
			t.Fatal(err)
		}
		defer partial.Close(ctx)
		// HubURL is set after start so the background pusher stays off.
		full.SetHub(hub.URL)
		partial.SetHub(hub.URL)
		if err := full.Exercise(ctx); err != nil {
			t.Fatal(err)
		}
		if err := partial.PushAll(ctx); err != nil {
			t.Fatal(err)
		}
		p1, _ := reg.Partner("funeral.fh01")
		rep, err := RunPusher(ctx, PusherOptions{Store: api.Store(), Partner: p1})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_ = rep.WriteText(&b)
		if !rep.Passed() {
			t.Fatalf("the full exercise fails:\n%s", b.String())
		}
		p2, _ := reg.Partner("funeral.fh02")
		rep, err = RunPusher(ctx, PusherOptions{Store: api.Store(), Partner: p2})
		if err != nil {
			t.Fatal(err)
		}
		failed := map[string]bool{}
		for _, r := range rep.Failed() {
			failed[r.Name] = true
		}
		for _, want := range []string{"push/reservation/create", "push/hall/update", "push/withdraw"} {
			if !failed[want] {
				t.Errorf("%s should fail for a partial pusher; failed: %v", want, failed)
			}
		}
		if failed["push/hall/create"] || failed["push/hall/stored-records-valid"] {
			t.Errorf("checks that hold failed: %v", failed)
		}
		cm, _ := reg.Partner("cemetery.cm01")
		rep, _ = RunPusher(ctx, PusherOptions{Store: api.Store(), Partner: cm})
		if len(rep.Results) != 8 || len(rep.Failed()) != 8 { // records in the sandbox; institution and burial: create, update, valid; withdraw: all fail, nothing was pushed
			t.Errorf("cemetery checks: %d, %d failed", len(rep.Results), len(rep.Failed()))
		}
	})
}

// TestPusherNeverPassesVacuously: a partner that pushed nothing (or pushed
// to the production API) fails every check, each with a cause and a fix;
// before, the stored-records checks passed over zero records.
func TestPusherNeverPassesVacuously(t *testing.T) {
	ctx := context.Background()
	open := func(name string) *funeral.Store {
		cfg := store.DefaultConfig()
		cfg.Path = filepath.Join(t.TempDir(), name)
		db, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st, err := funeral.OpenStore(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close(ctx) })
		return st
	}
	sandbox, prod := open("sandbox.db"), open("main.db")
	p := funeral.Partner{ID: "cemetery.cm01", Name: "模拟公墓01", Role: funeral.RoleCemetery, Environments: []string{"sandbox"}}
	rep, err := RunPusher(ctx, PusherOptions{Store: sandbox, StoreName: "sandbox.db", Partner: p})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed() || len(rep.Failed()) != len(rep.Results) || len(rep.Results) != 8 {
		t.Fatalf("an empty sandbox: %d results, %d failed, passed %v", len(rep.Results), len(rep.Failed()), rep.Passed())
	}
	for _, r := range rep.Results {
		if r.Message == "" || r.Fix == "" || strings.ContainsRune(r.Message+r.Fix, '\n') {
			t.Errorf("%s: want a one-line cause and fix, got %q / %q", r.Name, r.Message, r.Fix)
		}
	}
	first := rep.Results[0]
	if first.Name != "push/records-in-sandbox" || !strings.Contains(first.Message, "0 records pushed to sandbox.db") || !strings.Contains(first.Fix, "/sandbox/partner/v1/") {
		t.Errorf("first check: %+v", first)
	}
	var b strings.Builder
	_ = rep.WriteText(&b)
	if !strings.Contains(b.String(), "cause: 0 burial records to validate") || !strings.Contains(b.String(), "fix:   PUT /sandbox/partner/v1/burials/{id}") {
		t.Errorf("text report:\n%s", b.String())
	}

	// Pushed to the production API: the cause says so.
	body := []byte(`{"version":1,"name":"模拟公墓01","address":"上海市","phone":"021-12345678"}`)
	if _, err := prod.Apply(ctx, funeral.Write{PartnerID: p.ID, Kind: funeral.KindInstitution, ID: "institution", Version: 1, Hash: "h1", Data: body}); err != nil {
		t.Fatal(err)
	}
	rep, err = RunPusher(ctx, PusherOptions{Store: sandbox, StoreName: "sandbox.db", Production: prod, Partner: p})
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Results[0].Message; !strings.Contains(m, "1 in the production store") {
		t.Errorf("pushed to production: %q", m)
	}
}

// TestKindPathsInSpec: every path a fix names is an operation of the spec.
func TestKindPathsInSpec(t *testing.T) {
	spec, err := apispec.Partner()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range funeral.Kinds() {
		p, ok := kindPaths[kind]
		if !ok {
			t.Errorf("kind %s has no path", kind)
			continue
		}
		if _, _, ok := spec.Find("PUT", "/partner/v1/"+strings.ReplaceAll(p, "{id}", "X-1")); !ok {
			t.Errorf("PUT /partner/v1/%s is not in the spec", p)
		}
	}
}
