package verification

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
)

func TestAPI(t *testing.T) {
	sm := startSims(t)
	s := newService(t, testConfig(), openDB(t, t.TempDir()), sm.config(5*time.Second).partners(t), nil)
	h := s.APIHandler()
	do := func(method, path, ctype, body string) (int, map[string]any) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		if w.Code >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d with %s", method, path, w.Code, w.Header().Get("Content-Type"))
		}
		return w.Code, out
	}
	good, _ := json.Marshal(SubmitBody{Reference: "C-1", Household: "H-1", Authorization: "A-1", Members: householdsim.Household(7, true)})
	for _, c := range []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"not json", "POST", "/v1/households", "application/json", "{", 400, "bad_json"},
		{"wrong type", "POST", "/v1/households", "text/plain", string(good), 415, "unsupported_media_type"},
		{"unknown field", "POST", "/v1/households", "application/json", `{"reference":"x","origin":"32"}`, 400, "unknown_field"},
		{"invalid", "POST", "/v1/households", "application/json", `{"reference":"x","household":"h","authorization":"a","members":[{"name":"n","id_number":"310101199001011230"}],"items":["tax"]}`, 422, "validation_failed"},
		{"created", "POST", "/v1/households", "application/json", string(good), 201, ""},
		{"again", "POST", "/v1/households", "application/json", string(good), 200, ""},
		{"unknown id", "GET", "/v1/households/VR0", "", "", 404, CodeUnknownRequest},
		{"unknown path", "GET", "/v2/x", "", "", 404, "not_found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, out := do(c.method, c.path, c.ctype, c.body)
			if st != c.status || (c.code != "" && out["code"] != c.code) {
				t.Fatalf("%d %v, want %d %s", st, out, c.status, c.code)
			}
		})
	}
	_, out := do("POST", "/v1/households", "application/json", string(good))
	id, _ := out["id"].(string)
	waitFinal(t, s, []string{id}, time.Minute)
	st, res := do("GET", "/v1/households/"+id, "", "")
	if st != 200 || res["status"] != "final" || res["complete"] != true {
		t.Fatalf("%d %v", st, res)
	}
	b, _ := json.Marshal(res)
	for _, m := range householdsim.Household(7, true) {
		if bytes.Contains(b, []byte(m.IDNumber)) {
			t.Fatal("a whole ID number in the result")
		}
	}
	_ = http.MethodGet
}
