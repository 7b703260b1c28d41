package bankaccounts

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPI: requests through the API are stored once by ext_id; a bad one
// refuses the call with 422 naming it (masked) and stores nothing.
func TestAPI(t *testing.T) {
	e := start(t, nil, t.TempDir())
	h := e.svc.APIHandler()
	post := func(body string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/requests", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	good := `[{"ext_id":"a1","bank":"boc","op":"open","person_id":"310101194803120421","name":"张伟"},
		{"ext_id":"a2","bank":"ccb","op":"verify","person_id":"310115195507093214","name":"欧阳秀英","account":"6222620010002345679"}]`
	if code, body := post(good); code != http.StatusCreated || !strings.Contains(body, `"stored":2`) {
		t.Fatalf("post: %d %s", code, body)
	}
	if code, body := post(good); code != http.StatusCreated || !strings.Contains(body, `"stored":0`) {
		t.Fatalf("post again: %d %s", code, body)
	}
	bad := `[{"ext_id":"b1","bank":"boc","op":"loss","person_id":"310110195612308828","name":"王建国"},{"ext_id":"b2","bank":"xx","op":"fly","person_id":"310110195612308820","name":"x"}]`
	code, body := post(bad)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "account missing") || !strings.Contains(body, "request 2") ||
		strings.Contains(body, "310110195612308828") {
		t.Fatalf("bad: %d %s", code, body)
	}
	if n, _ := e.svc.Open(t.Context()); n != 2 {
		t.Fatalf("%d requests open, want 2", n)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/failures", nil))
	var out struct{ Failures []Failure }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		t.Fatalf("failures: %d %s", rec.Code, rec.Body.String())
	}
}
