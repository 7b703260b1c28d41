package conformance

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// TestLocalSandboxBodyLimit: the partner API, behind the hub's guard as
// the hub and mzhub sandbox run it, has one body limit,
// security.partner_api.max_body_bytes (1 MiB): one byte over is refused
// with 413 problem+json body_too_large; a body at the limit is read and
// judged on its content, also one over the 256 KiB the funeral API once
// enforced on its own.
func TestLocalSandboxBodyLimit(t *testing.T) {
	ctx := context.Background()
	limit := security.DefaultConfig().PartnerAPI.MaxBodyBytes
	if limit != funeral.DefaultMaxBodyBytes {
		t.Fatalf("limits: guard %d, funeral API %d; want one limit", limit, funeral.DefaultMaxBodyBytes)
	}
	kid, secret := "fh90-"+keys.NewKID(time.Now()), keys.Random(32)
	s, err := StartLocal(ctx, LocalOptions{Listen: "127.0.0.1:0", DataDir: t.TempDir(), KeyID: kid, Secret: secret,
		Partner: funeral.Partner{ID: "funeral.fh90", Name: "沙箱殡仪馆", Role: funeral.RoleFuneralHome, Environments: []string{funeral.EnvSandbox},
			AllowIPs: []string{"127.0.0.1", "::1"}, KeyIDs: []string{kid}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	put := func(size int64) (int, string, string) {
		// {"name":"xxx…"} padded to size bytes.
		body := `{"name":"` + strings.Repeat("x", int(size)-len(`{"name":""}`)) + `"}`
		req, _ := http.NewRequest("PUT", s.URL()+"/halls/H-001", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := sign.Sign(req, kid, secret); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, c := range []struct {
		size   int64
		status int
		code   string
	}{{limit + 1, 413, "body_too_large"}, {limit, 422, "validation_failed"}, {256<<10 + 1, 422, "validation_failed"}} {
		status, ctype, body := put(c.size)
		if status != c.status || ctype != "application/problem+json" || !strings.Contains(body, `"code":"`+c.code+`"`) {
			t.Errorf("%d bytes: %d %s %.200s; want %d %s", c.size, status, ctype, body, c.status, c.code)
		}
	}
}

// TestLocalSandboxAnswersAsTheHub: mzhub sandbox puts the hub's front
// before the API, so an integrator meets the hub's answers there too: a
// path with an empty segment is 400 bad_path (the mux once answered 307),
// a header over http.max_header_bytes 431 headers_too_large (once 200),
// an unknown endpoint 404 problem+json (once the mux's plain text).
func TestLocalSandboxAnswersAsTheHub(t *testing.T) {
	ctx := context.Background()
	kid, secret := "fh90-"+keys.NewKID(time.Now()), keys.Random(32)
	s, err := StartLocal(ctx, LocalOptions{Listen: "127.0.0.1:0", DataDir: t.TempDir(), KeyID: kid, Secret: secret, MaxHeaderBytes: 8 << 10,
		Partner: funeral.Partner{ID: "funeral.fh90", Name: "沙箱殡仪馆", Role: funeral.RoleFuneralHome, Environments: []string{funeral.EnvSandbox},
			AllowIPs: []string{"127.0.0.1", "::1"}, KeyIDs: []string{kid}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		name, path, header string
		status             int
		code               string
	}{
		{"empty segment", "/sandbox/partner/v1/halls//H-001", "", 400, "bad_path"},
		{"dot segment", "/sandbox/partner/v1/halls/./H-001", "", 400, "bad_path"},
		{"header over the limit", "/sandbox/partner/v1/halls/H-001", strings.Repeat("a", 16<<10), 431, "headers_too_large"},
		{"unknown endpoint", "/nothing-here", "", 404, "not_found"},
	} {
		req, _ := http.NewRequest("GET", "http://"+s.Addr+c.path, nil)
		if c.header != "" {
			req.Header.Set("X-Padding", c.header)
		}
		if err := sign.Sign(req, kid, secret); err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), `"code":"`+c.code+`"`) {
			t.Errorf("%s: %d %s %.200s; want %d %s", c.name, resp.StatusCode, resp.Header.Get("Content-Type"), b, c.status, c.code)
		}
	}
}
