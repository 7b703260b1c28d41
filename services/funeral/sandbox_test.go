package funeral

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestSandboxIsolated pushes to the sandbox mounted under /sandbox and
// checks the data lands in the sandbox's own file, never in the main store,
// and that a production-only partner is refused there.
func TestSandboxIsolated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	main := storetest.Open(t)
	reg := prometheus.NewRegistry()
	deps := Deps{Store: main, Partners: testPartners(t), Metrics: reg}
	prod, err := NewAPI(ctx, DefaultConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	sb, sdb, err := OpenSandbox(ctx, DefaultConfig(), deps, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	defer sb.Close(ctx)
	if _, err := os.Stat(filepath.Join(dir, SandboxDBFile)); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/partner/v1/", prod)
	mux.Handle("/sandbox/partner/v1/", http.StripPrefix("/sandbox", sb))
	srv := httptest.NewServer(guarded(t, deps.Partners, nil, mux))
	defer srv.Close()
	send := func(key, method, path string, body []byte) int {
		r, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if body != nil {
			r.Header.Set("Content-Type", "application/json")
		}
		if err := sign.Sign(r, key, testSecret(key)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body, _ := json.Marshal(hall(1, 1))
	// fh02 is sandbox-only: accepted in the sandbox, refused in production.
	if code := send("fh02-k1", "PUT", "/sandbox/partner/v1/halls/H-1", body); code != 200 {
		t.Fatalf("sandbox push: %d", code)
	}
	if code := send("fh02-k1", "PUT", "/partner/v1/halls/H-1", body); code != 403 {
		t.Fatalf("sandbox-only partner in production: %d", code)
	}
	// cm01 is production-only: refused in the sandbox.
	if code := send("cm01-k1", "GET", "/sandbox/partner/v1/burials", nil); code != 403 {
		t.Fatalf("production-only partner in the sandbox: %d", code)
	}
	if n, _ := sb.Store().Count(ctx, "funeral.fh02", KindHall); n != 1 {
		t.Fatalf("sandbox store holds %d halls", n)
	}
	if n, _ := prod.Store().Count(ctx, "", KindHall); n != 0 {
		t.Fatalf("the main store holds %d halls from the sandbox", n)
	}
}
