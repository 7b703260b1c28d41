package hub_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// TestListenerLimits: a client sending its body slowly loses the
// connection after http.read_timeout (it held it for ever before); an
// oversized header block and a raw "../" path get problem+json, not the
// server's plain text; console pages, /console/funeral/ included, carry
// the security headers.
func TestListenerLimits(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		c.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
		c.HTTP.ReadTimeout = 500 * time.Millisecond
		c.HTTP.MaxHeaderBytes = 8 << 10
		fc := funeral.ConfigFrom(*c)
		fc.PartnersDir = filepath.Join(c.Paths.Partners, "funeral")
		if err := config.SetSection(c, funeral.ConfigKey, fc); err != nil {
			t.Fatal(err)
		}
	}})
	addr := strings.TrimPrefix(srv.URL, "http://")

	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		_, _ = io.WriteString(conn, "POST /console/auth/login HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"username\":")
		// An upper bound only: the hub must close long before.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the hub kept a slow body's connection open for %s", time.Since(start).Round(time.Millisecond))
		}
		t.Logf("slow body's connection closed after %s (read_timeout 500ms)", time.Since(start).Round(time.Millisecond))
	})

	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/partner/v1/halls", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 12<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), `"code":"headers_too_large"`) {
			t.Fatalf("oversized headers: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	})

	t.Run("raw dot-dot path", func(t *testing.T) {
		for _, path := range []string{"/partner/v1/../console/", "/partner//v1/halls", "/console/./", "/partner/v1/%2e%2e/x"} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			conn.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), `"code":"bad_path"`) {
				t.Fatalf("%s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
		}
	})

	t.Run("unknown endpoint and method", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
		}{{http.MethodGet, "/nowhere", 404}, {http.MethodPost, "/healthz", 405}} {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s: %d %s, want %d problem+json", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.status)
			}
		}
	})

	t.Run("console security headers", func(t *testing.T) {
		for _, path := range []string{"/console/funeral/", "/console/", "/console/auth/login"} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("%s (%d): no %s", path, resp.StatusCode, h)
				}
			}
		}
	})
}

// TestPprofOnlyOnTheMetricsListener: http.pprof serves the runtime's
// profiles on the metrics listener and nowhere else; off (the default),
// the path is an unknown endpoint there too.
func TestPprofOnlyOnTheMetricsListener(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, on := range []bool{false, true} {
		srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) { c.HTTP.Pprof = on }})
		maddr, err := srv.Hub.MetricsAddr(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if got := get("http://" + maddr + "/debug/pprof/heap?debug=1"); got != want {
			t.Errorf("pprof %v: heap profile on the metrics listener: %d, want %d", on, got, want)
		}
		if got := get(srv.URL + "/debug/pprof/heap?debug=1"); got != http.StatusNotFound {
			t.Errorf("pprof %v: heap profile on the main listener: %d, want 404", on, got)
		}
	}
	cfg := config.Default()
	cfg.HTTP.Pprof, cfg.HTTP.MetricsListen = true, ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http.pprof") {
		t.Errorf("pprof without a metrics listener: %v, want refused", err)
	}
}
