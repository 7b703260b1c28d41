package allowance_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestCardStatusQuery is the console's on-demand card-status query of one
// person: operators ask, the answer is shown on the page (masked, with the
// 一卡通 card paid to), the query is audited with its answer; auditors,
// bad ID numbers, no card center and a card center down are refused with
// their reason, and the failure audited.
func TestCardStatusQuery(t *testing.T) {
	db := storetest.Open(t)
	s, aud := newService(t, db, clock.NewFake(time.Date(2026, 12, 2, 5, 0, 0, 0, clock.Shanghai)))
	g := synth.New(12)
	lost, holder := g.Next(), g.Next()
	st := &statuses{m: map[string]string{lost.ID: cardcenter.StatusLost}}
	if _, err := s.ApplyApplications(t.Context(), []cardcenter.Application{{ID: "Y1", IDNumber: holder.ID, CardType: cardcenter.SocialSecurityCard,
		Channel: "sscard", Yikatong: true, AppliedOn: "2026-11-20", District: holder.Division, BankCode: "308", Account: "6214830000555566667", Bank: "cmb"}}, nil); err != nil {
		t.Fatal(err)
	}
	operator := true
	h := s.OpsHandler(allowance.OpsOptions{User: func(*http.Request) string { return "olga" }, CanAct: func(*http.Request) bool { return operator },
		CSRF: func(*http.Request) string { return "tok" }})
	post := func(id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/card-status", strings.NewReader(url.Values{"id_number": {id}, "csrf_token": {"tok"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// No card center configured.
	if rec := post(lost.ID); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no card center") {
		t.Fatalf("without a card center: %d %s", rec.Code, rec.Body)
	}
	s.SetCardQuery(st)

	// The page offers the form to operators.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Body.String(), `action="card-status"`) || !strings.Contains(rec.Body.String(), "查询卡状态") {
		t.Fatal("no card-status form on the operator's page")
	}
	for _, tc := range []struct {
		name, id string
		code     int
		want     []string
	}{
		{"a lost card", " " + strings.ToLower(lost.ID) + " ", 200, []string{"卡状态查询结果", "挂失 · lost", lost.ID[:3] + "***********" + lost.ID[14:], "active"}},
		{"a 一卡通 holder", holder.ID, 200, []string{"正常 · normal", "cmb ***************6667"}},
		{"a bad ID number", lost.ID[:17] + "Z", 422, []string{"not a valid resident ID number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(tc.id)
			body := rec.Body.String()
			if rec.Code != tc.code {
				t.Fatalf("%d %s", rec.Code, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Fatalf("no %q in\n%s", w, body)
				}
			}
			if strings.Contains(body, lost.ID) || strings.Contains(body, holder.ID) || strings.Contains(body, "6214830000555566667") {
				t.Fatal("the answer shows a whole ID or account number")
			}
		})
	}
	if !aud.Has("allowance.card_status", audit.OutcomeSuccess, "card status lost") || !aud.Has("allowance.card_status", audit.OutcomeSuccess, "card status normal") {
		t.Fatalf("queries not audited: %+v", aud.Records())
	}
	asks := st.asks
	// The card center down: 503 with the reason, the failure audited.
	st.err = errors.New("card center down")
	if rec := post(lost.ID); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "card center down") {
		t.Fatalf("card center down: %d %s", rec.Code, rec.Body)
	}
	if !aud.Has("allowance.card_status", audit.OutcomeFailure, "card center down") || st.asks != asks+1 {
		t.Fatalf("failure not audited: %+v", aud.Records())
	}
	// Auditors read, they do not ask.
	operator = false
	if rec := post(lost.ID); rec.Code != http.StatusForbidden || st.asks != asks+1 {
		t.Fatalf("auditor asked: %d", rec.Code)
	}
}
