package conformance

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestSandboxSigningProxy(t *testing.T) {
	ctx := context.Background()
	s, err := StartSandbox(ctx, "127.0.0.1:0", "127.0.0.1:0", filepath.Join(t.TempDir(), "sandbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	body := `{"version":1,"name":"长青厅","category":"large","capacity":10,"price_fen":100,"status":"available"}`
	for _, c := range []struct {
		addr  string
		token bool
		want  int
	}{{s.ProxyAddr, true, 200}, {s.ProxyAddr, false, 401}, {s.APIAddr, true, 401}} {
		req, _ := http.NewRequest("PUT", "http://"+c.addr+"/partner/v1/halls/H-1", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if c.token {
			req.Header.Set("X-MZ-Signature", "sign-me")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s: %d %s", c.addr, resp.StatusCode, b)
		}
	}
}
