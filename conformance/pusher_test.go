package conformance

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

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
		if len(rep.Results) != 7 { // institution and burial: create, update, valid; withdraw
			t.Errorf("cemetery checks: %d", len(rep.Results))
		}
	})
}
