package funeralhomesim

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/access/accesstest"
	"github.com/shanghai-mca/mzhub/services/funeral"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func TestSimPushesToHub(t *testing.T) {
	reg, err := funeral.NewRegistry([]funeral.Partner{
		{ID: "funeral.fh01", Name: "模拟殡仪馆01", Role: funeral.RoleFuneralHome, Environments: []string{"sandbox"}, AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{"fh01-k1"}},
		{ID: "cemetery.cm01", Name: "模拟公墓01", Role: funeral.RoleCemetery, Environments: []string{"sandbox"}, AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{"cm01-k1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := funeral.DefaultConfig()
	cfg.Environment = "sandbox"
	cfg.RatePerSecond = 0
	ctx := context.Background()
	api, err := funeral.NewAPI(ctx, cfg, funeral.Deps{Store: storetest.Open(t), Partners: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close(ctx)
	guard := accesstest.Guard(t, accesstest.Options{Partners: reg.AccessRules(funeral.EnvSandbox),
		Secret: func(k string) []byte { return []byte("s-" + k) }})
	hub := httptest.NewServer(guard.Middleware(api))
	defer hub.Close()
	home, err := Start(ctx, Config{Index: 1, HubURL: hub.URL, Push: Credentials{"fh01-k1", []byte("s-fh01-k1")}, Booking: Credentials{"hub-k1", []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close(ctx)
	select {
	case <-home.Pushed():
	case <-time.After(20 * time.Second):
		t.Fatal("the first full push did not return within 20s")
	}
	want := 1 + 6 + 5 + 18 + 3
	if pushed, failed := home.Stats(); failed > 0 || pushed != want {
		t.Fatalf("first push: %d accepted, %d refused; want %d accepted", pushed, failed, want)
	}
	for kind, n := range map[string]int64{"hall": 4, "vehicle": 2, "supply": 5, "schedule": 18, "deceased": 3, "institution": 1} {
		got, err := api.Store().Count(ctx, "funeral.fh01", kind)
		if err != nil || got != n {
			t.Errorf("%s: %d stored, want %d (%v)", kind, got, n, err)
		}
	}
	if err := home.Update(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := PushCemetery(ctx, NewPusher(hub.URL, Credentials{"cm01-k1", []byte("s-cm01-k1")}), 1, false, 4, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := api.Store().Count(ctx, "cemetery.cm01", "burial"); n != 4 {
		t.Fatalf("%d burials", n)
	}
}

func TestDemo(t *testing.T) {
	ctx := context.Background()
	d, err := NewDemo(3, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := funeral.DefaultConfig()
	cfg.RatePerSecond = 0
	api, err := funeral.NewAPI(ctx, cfg, funeral.Deps{Store: storetest.Open(t), Partners: d.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close(ctx)
	guard := accesstest.Guard(t, accesstest.Options{Partners: d.Registry().AccessRules(funeral.EnvProduction),
		Secret: func(k string) []byte { s, _ := d.Secret(ctx, k); return s }})
	hub := httptest.NewServer(guard.Middleware(api))
	defer hub.Close()
	urls, err := d.Start(ctx, hub.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	if len(urls) != 3 {
		t.Fatalf("urls %v", urls)
	}
	select {
	case <-d.FirstRound():
	case <-time.After(20 * time.Second):
		t.Fatal("the demo's first round was not pushed within 20s")
	}
	halls, _ := api.Store().Count(ctx, "", "hall")
	burials, _ := api.Store().Count(ctx, "", "burial")
	if halls != 12 || burials != 15 {
		t.Fatalf("demo pushed %d halls, %d burials; want 12 and 15", halls, burials)
	}
}
