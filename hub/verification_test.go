package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/verification"
)

// TestVerificationDemo runs the demo hub's household verification: the
// shipped verification centre partner (its demo key in the key provider)
// submits five households through its signed API (two asked about in
// other provinces too) and Jiangsu sends two requests; all become final
// against the simulated partners, Jiangsu gets its answers, the console
// shows quality, reviews and the results with the banks' attachment links,
// and the centre's API refuses unsigned calls with a problem.
func TestVerificationDemo(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{Hub: hub.Options{Demo: true}})
	svc := srv.Hub.Verification()
	if svc == nil || len(svc.Partners()) != 18 {
		t.Fatalf("verification partners wired: %v", svc)
	}
	ctx := context.Background()
	op := srv.Console(t, "vera", accounts.RoleOperator)
	// Besides the demo's driver, this test is the shipped centre too: its
	// key (generated in the demo's key provider) signs a submission.
	secret, err := srv.Hub.Security().Keys.Get(ctx, keys.PartnerPrefix+"vcentre-1")
	if err != nil {
		t.Fatal(err)
	}
	centreCall := func(method, path, keyID string, body any) (int, map[string]any, string) {
		t.Helper()
		var rd *strings.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = strings.NewReader(string(b))
		} else {
			rd = strings.NewReader("")
		}
		req, err := http.NewRequest(method, srv.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if err := sign.Sign(req, keyID, secret); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, resp.Header.Get("Content-Type")
	}
	code, sub, _ := centreCall(http.MethodPost, "/internal/verification/v1/households", "vcentre-1", verification.SubmitBody{
		Reference: "TEST-CENTRE-1", Household: "HH003000", Division: "310104", Authorization: "EAUTH-TEST-1",
		Members: householdsim.Household(3000, false)})
	mine, _ := sub["id"].(string)
	if code != http.StatusCreated || mine == "" {
		t.Fatalf("the centre's signed submission: %d %v", code, sub)
	}
	if code, p, ct := centreCall(http.MethodPost, "/internal/verification/v1/households", "vcentre-9", verification.SubmitBody{Reference: "TEST-X"}); code != http.StatusUnauthorized || p["code"] != "unknown_key" || ct != "application/problem+json" {
		t.Fatalf("a key id of no partner: %d %v %s", code, p, ct)
	}
	bound := time.After(3 * time.Minute)
	for {
		changed := svc.Changed()
		recent, err := svc.Recent(ctx, 50)
		if err != nil {
			t.Fatal(err)
		}
		final, inbound := 0, 0
		for _, r := range recent {
			if r.Status == "final" {
				final++
			}
			if r.Origin == "32" {
				inbound++
			}
		}
		// Sampled answers wait for review: the operator accepts them on the console's form.
		items, err := svc.Reviews(ctx, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			code, body, _ := op.Form("/console/verification/reviews/"+strconv.FormatInt(it.CallID, 10), url.Values{"decision": {"accept"}, "csrf_token": {csrf(op)}})
			if code != http.StatusOK && code != http.StatusSeeOther {
				t.Fatalf("review: %d %s", code, body)
			}
		}
		stats, err := svc.ProvinceStats(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		returned := 0
		for _, st := range stats {
			if st.Direction == "in" && st.Province == "32" {
				returned = st.Returned
			}
		}
		if len(recent) == hub.DemoHouseholds+3 && final == len(recent) && inbound == 2 && returned == 2 {
			break
		}
		select {
		case <-changed:
		case <-bound:
			t.Fatalf("demo verification: %d requests, %d final, %d inbound, %d returned", len(recent), final, inbound, returned)
		}
	}
	// The centre reads its final result through its API.
	if code, res, _ := centreCall(http.MethodGet, "/internal/verification/v1/households/"+mine, "vcentre-1", nil); code != http.StatusOK ||
		res["status"] != "final" || res["reference"] != "TEST-CENTRE-1" {
		t.Fatalf("the centre's result: %d %v", code, res)
	}
	recent, _ := svc.Recent(ctx, 50)
	var withLink string
	for _, r := range recent {
		res, err := svc.Result(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Members {
			for _, f := range m.Facts {
				if f.Link != "" {
					withLink = r.ID
				}
			}
		}
	}
	if withLink == "" {
		t.Fatal("no deposit with an attachment link in the demo's results")
	}
	code, page := op.Page("/console/verification/")
	if code != 200 || !strings.Contains(page, "数据质量") || !strings.Contains(page, "villagebank.vb09") || !strings.Contains(page, "in (asked Shanghai)") {
		t.Fatalf("console page %d:\n%s", code, page)
	}
	code, page = op.Page("/console/verification/requests/" + withLink)
	if code != 200 || !strings.Contains(page, `rel="noopener noreferrer">attachment at the bank</a>`) {
		t.Fatalf("request page %d:\n%s", code, page)
	}
	// The verification centre's API sits behind the partner guard.
	resp, err := http.Post(srv.URL+"/internal/verification/v1/households", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unsigned call: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Auditors read the page but cannot review.
	aud := srv.Console(t, "audra", accounts.RoleAuditor)
	if code, _, _ := aud.Form("/console/verification/reviews/1", url.Values{"decision": {"accept"}, "csrf_token": {csrf(aud)}}); code != http.StatusForbidden {
		t.Fatalf("auditor review: %d", code)
	}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// csrf reads the session's CSRF token from the verification page.
func csrf(c *hubtest.Client) string {
	_, page := c.Page("/console/verification/")
	if m := csrfMeta.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}
