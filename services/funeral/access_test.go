package funeral

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/access"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestWithSecurityAccess plugs the security package's partner-auth
// middleware in front of the API, fed by the funeral registry.
func TestWithSecurityAccess(t *testing.T) {
	ctx := context.Background()
	reg := testPartners(t)
	kp := keys.NewFile(t.TempDir())
	for _, k := range []string{"fh01-k1", "cm01-k1"} {
		if err := kp.Put(ctx, keys.PartnerPrefix+k, testSecret(k)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := security.DefaultConfig().PartnerAPI
	cfg.Partners = reg.AccessRules(EnvProduction)
	al := &audittest.Recorder{}
	guard, err := access.New(access.Options{Config: cfg, Keys: kp, Nonces: access.NewMemoryNonces(), Audit: al, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(ctx, DefaultConfig(), Deps{Store: storetest.Open(t), Partners: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close(ctx)
	srv := httptest.NewServer(guard.Middleware(api))
	defer srv.Close()
	body, _ := json.Marshal(hall(1, 100))
	send := func(key string) int {
		r, _ := http.NewRequest("PUT", srv.URL+"/partner/v1/halls/H-1", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if key != "" {
			if err := sign.Sign(r, key, testSecret(key)); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send("fh01-k1"); got != 200 {
		t.Fatalf("home: %d", got)
	}
	if got := send("cm01-k1"); got != 403 {
		t.Fatalf("cemetery pushing a hall: %d", got)
	}
	if got := send(""); got != 401 {
		t.Fatalf("unsigned: %d", got)
	}
	if n, _ := api.Store().Count(ctx, "funeral.fh01", KindHall); n != 1 {
		t.Fatalf("%d halls", n)
	}
	if n := len(al.Records()); n != 3 {
		t.Fatalf("%d audit records for 3 calls", n)
	}
}

func TestAccessRules(t *testing.T) {
	reg := testPartners(t)
	byID := func(rules []security.PartnerAccess) map[string]security.PartnerAccess {
		m := map[string]security.PartnerAccess{}
		for _, r := range rules {
			m[r.ID] = r
		}
		return m
	}
	prod := byID(reg.AccessRules(EnvProduction))
	if !prod["funeral.fh02"].Disabled || prod["funeral.fh01"].Disabled {
		t.Fatalf("production rules: %+v", prod)
	}
	if got := prod["funeral.fh01"].AllowCIDRs; len(got) != 2 || got[0] != "127.0.0.1/32" || got[1] != "::1/128" {
		t.Fatalf("allowlist %v", got)
	}
	both := byID(reg.AccessRules(EnvProduction, EnvSandbox))
	if both["funeral.fh02"].Disabled || both["cemetery.cm01"].Disabled {
		t.Fatalf("rules for both environments: %+v", both)
	}
}
