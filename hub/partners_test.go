package hub_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// TestPartnerChangesApplyWhileServing: partner credentials live in the
// state store; a change written by another process (here a second
// PartnerStore on the same database, as `mzhub partner` opens it) reaches
// the serving hub within funeral.partner_reload, without a restart: a
// disabled partner's next signed request is refused, an enabled one is
// served again, and a key dropped by rotate-key --drop-old stops working
// while the new key works. Every change is audited.
func TestPartnerChangesApplyWhileServing(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		fc := funeral.ConfigFrom(*c)
		fc.PartnerReload = 20 * time.Millisecond
		fc.PartnersDir = filepath.Join(c.Paths.Partners, "funeral")
		if err := config.SetSection(c, funeral.ConfigKey, fc); err != nil {
			t.Fatal(err)
		}
	}})
	ctx := context.Background()
	sync := srv.Hub.PartnerSync()
	if sync == nil {
		t.Fatal("the hub serves no funeral partners")
	}
	// The CLI's view: its own PartnerStore on the shared database.
	cli, err := funeral.OpenPartnerStore(ctx, srv.Hub.Store(), srv.Hub.Security().Fields, srv.Hub.Security().Audit, nil)
	if err != nil {
		t.Fatal(err)
	}
	applied := func() {
		t.Helper()
		v, err := cli.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := sync.WaitApplied(wctx, v); err != nil {
			t.Fatalf("partner state %d not applied by the serving hub: %v", v, err)
		}
	}
	iss, err := cli.Add(ctx, funeral.Partner{ID: "funeral.fh77", Name: "测试殡仪馆", Role: funeral.RoleFuneralHome,
		Environments: []string{funeral.EnvProduction}, AllowIPs: []string{"127.0.0.1"}}, "cli:tester")
	if err != nil {
		t.Fatal(err)
	}
	applied()
	version := 0
	push := func(keyID, secretHex string) int {
		t.Helper()
		version++
		body, _ := json.Marshal(map[string]any{"version": version, "name": "长青厅", "category": "large", "capacity": 300, "price_fen": 100, "status": "available"})
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/partner/v1/halls/H-1", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		secret, _ := hex.DecodeString(secretHex)
		if err := sign.Sign(req, keyID, secret); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := push(iss.KeyID, iss.SecretHex); got >= 300 {
		t.Fatalf("a partner added while serving: status %d, want 2xx", got)
	}

	if err := cli.SetDisabled(ctx, "funeral.fh77", true, "cli:tester"); err != nil {
		t.Fatal(err)
	}
	applied()
	if got := push(iss.KeyID, iss.SecretHex); got != http.StatusUnauthorized {
		t.Fatalf("the next request of a disabled partner: status %d, want 401", got)
	}
	if err := cli.SetDisabled(ctx, "funeral.fh77", false, "cli:tester"); err != nil {
		t.Fatal(err)
	}
	applied()
	if got := push(iss.KeyID, iss.SecretHex); got >= 300 {
		t.Fatalf("re-enabled partner: status %d, want 2xx", got)
	}

	rot, err := cli.RotateKey(ctx, "funeral.fh77", true, "cli:tester")
	if err != nil {
		t.Fatal(err)
	}
	applied()
	if got := push(iss.KeyID, iss.SecretHex); got != http.StatusUnauthorized {
		t.Fatalf("a key dropped by rotate-key --drop-old: status %d, want 401", got)
	}
	if got := push(rot.KeyID, rot.SecretHex); got >= 300 {
		t.Fatalf("the rotated key: status %d, want 2xx", got)
	}
	requireAudited(t, srv, []audited{
		{"cli:tester", "partner.add"}, {"cli:tester", "partner.disable"}, {"cli:tester", "partner.enable"},
		{"cli:tester", "partner.rotate_key"}, {"system:registry-file", "partner.import"},
	})
}

// TestSandboxHubKeepsPartnersOutOfTheMainStore: a hub run as the hosted
// sandbox (funeral.environment: sandbox) once stored /partner/v1/ pushes in
// its main store, where conformance never looked; it now refuses that path
// with 404 problem+json naming /sandbox/partner/v1/, and the same signed
// push under /sandbox/ is stored in the sandbox's own store.
func TestSandboxHubKeepsPartnersOutOfTheMainStore(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		fc := funeral.ConfigFrom(*c)
		fc.Environment = funeral.EnvSandbox
		fc.PartnerReload = 20 * time.Millisecond
		fc.PartnersDir = filepath.Join(c.Paths.Partners, "funeral")
		if err := config.SetSection(c, funeral.ConfigKey, fc); err != nil {
			t.Fatal(err)
		}
	}})
	ctx := context.Background()
	cli, err := funeral.OpenPartnerStore(ctx, srv.Hub.Store(), srv.Hub.Security().Fields, srv.Hub.Security().Audit, nil)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := cli.Add(ctx, funeral.Partner{ID: "funeral.fh78", Name: "沙箱测试殡仪馆", Role: funeral.RoleFuneralHome,
		Environments: []string{funeral.EnvSandbox}, AllowIPs: []string{"127.0.0.1"}}, "cli:tester")
	if err != nil {
		t.Fatal(err)
	}
	v, err := cli.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Hub.PartnerSync().WaitApplied(wctx, v); err != nil {
		t.Fatal(err)
	}
	secret, _ := hex.DecodeString(iss.SecretHex)
	push := func(path string) (int, string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"version": 1, "name": "长青厅", "category": "large", "capacity": 300, "price_fen": 100, "status": "available"})
		req, _ := http.NewRequest(http.MethodPut, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := sign.Sign(req, iss.KeyID, secret); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := push("/partner/v1/halls/H-1"); st != http.StatusNotFound || !strings.Contains(body, "/sandbox/partner/v1/") {
		t.Fatalf("production path on the sandbox hub: %d %s; want 404 naming /sandbox/partner/v1/", st, body)
	}
	if st, body := push("/sandbox/partner/v1/halls/H-1"); st >= 300 {
		t.Fatalf("sandbox path: %d %s; want 2xx", st, body)
	}
	var n int
	if err := srv.Hub.Store().QueryRowContext(ctx, `SELECT COUNT(*) FROM funeral_records WHERE partner_id = 'funeral.fh78'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d of the sandbox partner's records in the main store", n)
	}
}
