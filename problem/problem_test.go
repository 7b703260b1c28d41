package problem

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	r := httptest.NewRequest("POST", "/partner/v1/halls?x=1", nil)
	r.Header.Set(RequestIDHeader, "req-1")
	w := httptest.NewRecorder()
	Write(w, r, RateLimited(3))
	if w.Code != 429 {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != ContentType {
		t.Fatalf("content type %q", ct)
	}
	if w.Header().Get("Retry-After") != "3" {
		t.Fatalf("retry-after %q", w.Header().Get("Retry-After"))
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": TypeBase + "rate_limited", "status": 429.0, "code": "rate_limited", "instance": "/partner/v1/halls", "request_id": "req-1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestWriteErrorHidesInternal(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("GET", "/x", nil), errors.New("pq: password authentication failed for user secret"))
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	p := NotFound("no such hall")
	WriteError(w, httptest.NewRequest("GET", "/x", nil), &p)
	if w.Code != 404 || !strings.Contains(w.Body.String(), `"code":"not_found"`) {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name, ct, body string
		limit          int64
		code           string
	}{
		{"ok", "application/json", `{"name":"a","count":1}`, 0, ""},
		{"ok charset", "application/json; charset=utf-8", `{"name":"a"}`, 0, ""},
		{"gbk charset", "application/json; charset=gbk", `{"name":"a"}`, 0, CodeUnsupportedMediaType},
		{"wrong type", "text/plain", `{"name":"a"}`, 0, CodeUnsupportedMediaType},
		{"no type", "", `{"name":"a"}`, 0, CodeUnsupportedMediaType},
		{"too large", "application/json", `{"name":"` + strings.Repeat("a", 100) + `"}`, 50, CodeBodyTooLarge},
		{"syntax", "application/json", `{"name":`, 0, CodeBadJSON},
		{"garbage", "application/json", `{{{`, 0, CodeBadJSON},
		{"empty", "application/json", ``, 0, CodeBadJSON},
		{"type", "application/json", `{"count":"x"}`, 0, CodeBadJSON},
		{"unknown", "application/json", `{"nmae":"a"}`, 0, CodeUnknownField},
		{"two values", "application/json", `{} {}`, 0, CodeBadJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", strings.NewReader(tt.body))
			if tt.ct != "" {
				r.Header.Set("Content-Type", tt.ct)
			}
			var b body
			p := DecodeJSON(r, &b, tt.limit)
			got := ""
			if p != nil {
				got = p.Code
				if p.Status >= 500 {
					t.Errorf("status %d for bad input", p.Status)
				}
			}
			if got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
		})
	}
}

func TestRecover(t *testing.T) {
	h := Recover(nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom at store.go:12") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 || strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"name":"a"}`)
	f.Add(`[1,2`)
	f.Fuzz(func(t *testing.T, s string) {
		r := httptest.NewRequest("POST", "/x", strings.NewReader(s))
		r.Header.Set("Content-Type", "application/json")
		var v struct {
			Name string `json:"name"`
		}
		if p := DecodeJSON(r, &v, 1024); p != nil && p.Status >= 500 {
			t.Fatalf("status %d", p.Status)
		}
	})
}
