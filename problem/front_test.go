package problem

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestFrontAndUnmatched: what Front refuses never reaches the handler, and
// what the mux does not match is answered as a problem, not as the mux's
// plain text or redirect.
func TestFrontAndUnmatched(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /partner/v1/halls/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hall")) })
	h := Front(4096, Unmatched(mux))
	for _, c := range []struct {
		name, method, target, header string
		status                       int
		code                         string
	}{
		{"served", "GET", "/partner/v1/halls/H-1", "", 200, ""},
		{"empty segment", "GET", "/partner/v1/halls//H-1", "", 400, "bad_path"},
		{"dot-dot", "GET", "/partner/v1/../v1/halls/H-1", "", 400, "bad_path"},
		{"headers too large", "GET", "/partner/v1/halls/H-1", strings.Repeat("x", 5000), 431, "headers_too_large"},
		{"unknown path", "GET", "/nowhere", "", 404, "not_found"},
		{"wrong method", "POST", "/partner/v1/halls/H-1", "", 405, "method_not_allowed"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if c.header != "" {
			r.Header.Set("X-Pad", c.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, w.Code, c.status, w.Body)
			continue
		}
		if c.code == "" {
			continue
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" || !strings.Contains(w.Body.String(), `"code":"`+c.code+`"`) {
			t.Errorf("%s: %s %s, want problem %s", c.name, ct, w.Body, c.code)
		}
		if c.status == 405 && w.Header().Get("Allow") == "" {
			t.Errorf("%s: no Allow header", c.name)
		}
	}
}
