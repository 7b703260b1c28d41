package portal

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/joblib/joblibsim"
)

func TestConsoleHandler(t *testing.T) {
	e := newEnv(t, joblibsim.Options{ConsentPercent: 100}, func(c *Config) { c.AutoApprove = false })
	e.sim.AddApplications(10)
	p := idFor("310104", "19500101", 1)
	e.register("MZ-LNZHJT", "2026-12", []EligibleRecord{NewEligible(p, "王伟", "310104", "shanghai", 0, "")})
	for range 2 {
		if err := e.round(); err != nil {
			t.Fatal(err)
		}
	}
	operator := true
	h := e.svc.Handler(func(*http.Request) string { return "olga" }, func(*http.Request) bool { return operator }, nil)
	do := func(method, path, body string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"GET", "/", "", 200, "<svg"},
		{"GET", "/?item=MZ-LNZHJT&month=2026-12", "", 200, "老年综合津贴"},
		{"GET", "/stats.json", "", 200, `"applications"`},
		{"GET", "/stats.json?month=2026-1", "", 422, "validation_failed"},
		{"GET", "/stats.json?division=320102", "", 422, "division"},
		{"GET", "/refused.json", "", 200, `"refused"`},
		{"POST", "/cases/NOSUCH/decision", `{"decision":"confirm"}`, 404, "no such case"},
		{"POST", "/cases/" + e.caseOf(p).CaseID + "/decision", `{"decision":"maybe"}`, 422, "decision"},
		{"POST", "/cases/" + e.caseOf(p).CaseID + "/decision", `{"decision":"confirm","extra":1}`, 400, ""},
		{"POST", "/cases/" + e.caseOf(p).CaseID + "/decision", `{"decision":"confirm"}`, 200, "confirm"},
		{"POST", "/cases/" + e.caseOf(p).CaseID + "/decision", `{"decision":"confirm"}`, 409, "decided"},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s: %d %.200s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.contains)
		}
	}
	operator = false
	if code, _ := do("POST", "/cases/X/decision", `{"decision":"confirm"}`); code != 403 {
		t.Errorf("an auditor decided: %d", code)
	}
	_, body := do("GET", "/stats.json", "")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Applications) == 0 || len(st.Mianshen) == 0 {
		t.Fatalf("stats: %v %+v", err, st)
	}
}
