package baseline

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	cfg := security.DefaultConfig()
	cfg.KeyDir = t.TempDir()
	fc := clock.NewFake(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	extra := []security.PartnerAccess{{ID: "funeral.fh01", KeyIDs: []string{"fh01-k1"}, AllowCIDRs: []string{"127.0.0.1/32"}}}
	b, err := Open(ctx, Options{Config: cfg, DB: db, Clock: fc, ExtraPartners: extra})
	if err != nil {
		t.Fatal(err)
	}
	// Keys were generated; a second Open reuses them.
	if _, err := Open(ctx, Options{Config: cfg, DB: db, Clock: fc}); err != nil {
		t.Fatal(err)
	}
	ct, err := b.Fields.Encrypt("11010519491231002X")
	if err != nil || !strings.HasPrefix(ct, b.Fields.ActiveKID()+":") {
		t.Fatalf("encrypt: %s %v", ct, err)
	}
	secret := keys.Random(32)
	if err := b.Keys.Put(ctx, keys.PartnerPrefix+"fh01-k1", secret); err != nil {
		t.Fatal(err)
	}
	h := b.Partners.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := security.PartnerFrom(r.Context())
		_, _ = w.Write([]byte(p.ID))
	}))
	r := httptest.NewRequest("GET", "/partner/v1/halls", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	if err := sign.SignAt(r, "fh01-k1", secret, fc.Now(), sign.NewNonce()); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "funeral.fh01" {
		t.Fatalf("partner call: %d %s", w.Code, w.Body)
	}
	es, _ := b.Audit.List(ctx, audit.Filter{Action: "partner_api.call"})
	if len(es) != 1 || es[0].Actor != "partner:funeral.fh01" {
		t.Fatalf("audit %+v", es)
	}
	// Run prunes and stops with its context.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestOpenWithoutKeys(t *testing.T) {
	cfg := security.DefaultConfig()
	cfg.KeyProvider = "env"
	_, err := Open(context.Background(), Options{Config: cfg, DB: storetest.Open(t), Provider: keys.NewEnv(func() []string { return nil })})
	if err == nil || !strings.Contains(err.Error(), "audit") {
		t.Fatalf("missing keys: %v", err)
	}
}

// TestAuditKeyFile: with security.audit_key_file the audit chain is keyed
// by that file (kept off the data directory), not by the provider's key;
// a file readable by others is refused.
func TestAuditKeyFile(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	cfg := security.DefaultConfig()
	cfg.KeyDir = t.TempDir()
	cfg.AuditKeyFile = filepath.Join(t.TempDir(), "audit.key")
	key := keys.Random(32)
	if err := os.WriteFile(cfg.AuditKeyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, Options{Config: cfg, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Audit.Append(ctx, audit.Record{Actor: "system:test", Action: "test.keyed", Outcome: audit.OutcomeSuccess}); err != nil {
		t.Fatal(err)
	}
	byFile, err := audit.Open(ctx, db, key)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := byFile.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("the chain does not verify with the file's key: %+v %v", rep, err)
	}
	providerKey, err := b.Keys.Get(ctx, keys.AuditName)
	if err != nil {
		t.Fatal(err)
	}
	byProvider, _ := audit.Open(ctx, db, providerKey)
	if rep, err := byProvider.Verify(ctx); err == nil && rep.OK() {
		t.Fatal("the chain verifies with the provider's key: the file was not used")
	}
	if err := os.Chmod(cfg.AuditKeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{Config: cfg, DB: db}); err == nil || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("a world-readable audit key file: %v", err)
	}
}
