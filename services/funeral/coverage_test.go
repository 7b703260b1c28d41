package funeral

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestEveryOperationServed exercises every operation of the spec with a
// successful call, validated against the spec, and fails for any operation
// left out: a route added to the spec without a working handler, or a
// handler answering outside the spec, breaks this test.
func TestEveryOperationServed(t *testing.T) {
	h := newHarness(t, storetest.Open(t), nil)
	bureau := httptest.NewServer(h.api.BureauHandler("/internal/funeral"))
	defer bureau.Close()
	put := func(path, body string) {
		t.Helper()
		r, _ := http.NewRequest("PUT", bureau.URL+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("bureau PUT %s: %d", path, resp.StatusCode)
		}
	}
	put("/internal/funeral/v1/intermediaries/IM-0012", `{"name":"上海某殡葬服务有限公司","credit_code":"91310104MA1FL1234X","status":"active","registered_on":"2021-05-10"}`)
	put("/internal/funeral/v1/intermediaries/IM-0012/staff/ST-1", `{"name":"赵某","role":"礼仪师","phone":"13611118899"}`)
	put("/internal/funeral/v1/credit-list/CL-1", `{"list":"black","subject_type":"intermediary","subject_id":"IM-0099","subject_name":"某工作室","listed_on":"2026-09-01"}`)
	put("/internal/funeral/v1/credit-list/CL-2", `{"list":"red","subject_type":"intermediary","subject_id":"IM-0012","subject_name":"上海某殡葬服务有限公司","listed_on":"2026-09-01"}`)

	bodies := map[string]any{
		"halls":        hall(1, 280000),
		"vehicles":     map[string]any{"version": 1, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 60000, "status": "available"},
		"supplies":     map[string]any{"version": 1, "name": "骨灰盒", "category": "urn", "unit": "个", "price_fen": 58000, "stock": 3, "status": "on_sale"},
		"schedules":    map[string]any{"version": 1, "resource_type": "hall", "resource_id": "H-1", "date": "2026-11-28", "slots": []any{map[string]any{"start_at": "2026-11-28T08:00:00+08:00", "end_at": "2026-11-28T09:00:00+08:00", "state": "free"}}},
		"reservations": map[string]any{"version": 1, "resource_type": "hall", "resource_id": "H-1", "start_at": "2026-11-28T08:00:00+08:00", "end_at": "2026-11-28T09:00:00+08:00", "status": "confirmed", "channel": "counter", "contact": map[string]any{"name": "张三", "phone": "13812345678"}},
		"deceased":     deceased(1, "received", "2026-11-27T08:00:00+08:00"),
	}
	for plural, body := range bodies {
		for _, rq := range []req{
			{method: "PUT", path: "/partner/v1/" + plural + "/X-1", body: body},
			{method: "GET", path: "/partner/v1/" + plural + "/X-1"},
			{method: "GET", path: "/partner/v1/" + plural},
			{method: "DELETE", path: "/partner/v1/" + plural + "/X-1"},
		} {
			if r := h.do(t, rq); r.status >= 300 {
				t.Errorf("%s %s: %d %s", rq.method, rq.path, r.status, r.body)
			}
		}
	}
	burial := map[string]any{"version": 1, "deceased_name": "王某某", "burial_date": "2026-11-20", "burial_type": "niche", "plot_code": "A-1"}
	for _, rq := range []req{
		{key: "cm01-k1", method: "PUT", path: "/partner/v1/burials/B-1", body: burial},
		{key: "cm01-k1", method: "GET", path: "/partner/v1/burials/B-1"},
		{key: "cm01-k1", method: "GET", path: "/partner/v1/burials"},
		{key: "cm01-k1", method: "DELETE", path: "/partner/v1/burials/B-1"},
		{method: "PUT", path: "/partner/v1/institution", body: institution("funeral_home")},
		{method: "GET", path: "/partner/v1/institution"},
		{method: "GET", path: "/partner/v1/intermediaries"},
		{method: "GET", path: "/partner/v1/intermediaries/IM-0012"},
		{method: "GET", path: "/partner/v1/intermediaries/IM-0012/staff"},
		{method: "GET", path: "/partner/v1/credit-list?list=black"},
	} {
		r := h.do(t, rq)
		if r.status >= 300 {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, r.status, r.body)
		}
		if strings.Contains(rq.path, "credit-list") {
			items := r.json(t)["items"].([]any)
			if len(items) != 1 || items[0].(map[string]any)["list"] != "black" {
				t.Errorf("credit list filter: %s", r.body)
			}
		}
		if strings.HasSuffix(rq.path, "/staff") && (strings.Contains(string(r.body), "13611118899") || !strings.Contains(string(r.body), "136****8899")) {
			t.Errorf("staff phone not masked: %s", r.body)
		}
	}
	// The credit list pages one entry at a time.
	var ids []string
	path := "/partner/v1/credit-list?page_size=1"
	for i := 0; i < 5 && path != ""; i++ {
		r := h.do(t, req{method: "GET", path: path})
		m := r.json(t)
		for _, it := range m["items"].([]any) {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
		path = ""
		if tok, _ := m["next_page_token"].(string); tok != "" {
			path = "/partner/v1/credit-list?page_size=1&page_token=" + tok
		}
	}
	if strings.Join(ids, ",") != "CL-1,CL-2" {
		t.Errorf("credit list pages: %v", ids)
	}
	for _, op := range h.api.spec.Operations() {
		if !h.seen[op.ID] {
			t.Errorf("operation %s (%s %s) was never served successfully", op.ID, op.Method, op.Path)
		}
	}
}

// TestChangesReachTheBus checks the outbox relay: every stored change is
// published once with its record, and a bus outage loses nothing. It relays
// through the API's own publisher, which refuses a topic Topology does not
// declare: what the service publishes is what it declares.
func TestChangesReachTheBus(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		h.bus.fail = true
		for i, p := range []int{100, 200, 300} {
			if r := h.do(t, req{method: "PUT", path: "/partner/v1/halls/H-1", body: hall(i+1, p)}); r.status != 200 {
				t.Fatal(r.status)
			}
		}
		if r := h.do(t, req{method: "DELETE", path: "/partner/v1/halls/H-1"}); r.status != 204 {
			t.Fatal(r.status)
		}
		ctx := context.Background()
		if _, err := h.api.Store().Relay(ctx, h.api.bus, 100); err == nil {
			t.Fatal("relay reported success with the bus down")
		}
		h.bus.fail = false
		n, err := h.api.Store().Relay(ctx, h.api.bus, 100)
		if err != nil || n != 4 {
			t.Fatalf("relayed %d, %v", n, err)
		}
		if n, _ := h.api.Store().Relay(ctx, h.api.bus, 100); n != 0 {
			t.Fatalf("relayed %d again", n)
		}
		keys := map[string]bool{}
		for _, m := range h.bus.msgs {
			if !Topology.Publishes(m.Topic) || m.Topic != TopicChanges || m.Key != "funeral.fh01/hall/H-1" {
				t.Fatalf("message %+v", m)
			}
			keys[m.IdempotencyKey] = true
			var c Change
			if err := json.Unmarshal(m.Body, &c); err != nil || c.Kind != "hall" {
				t.Fatalf("body %s", m.Body)
			}
		}
		if len(keys) != 4 {
			t.Fatalf("idempotency keys %v", keys)
		}
		// The bureau's feed lists the same four changes.
		bureau := httptest.NewServer(h.api.BureauHandler("/internal/funeral"))
		defer bureau.Close()
		resp, err := http.Get(bureau.URL + "/internal/funeral/v1/changes?after=0")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var feed struct{ Items []Change }
		_ = json.NewDecoder(resp.Body).Decode(&feed)
		if len(feed.Items) != 4 || feed.Items[3].Op != "delete" {
			t.Fatalf("feed %+v", feed)
		}
	})
}

func TestOverview(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		now := h.clock.Now()
		// Received six days ago: over fh01's threshold of 5 days.
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/deceased/D-OLD", body: deceased(1, "stored", now.Add(-6*24*time.Hour).Format(time.RFC3339))}); r.status != 200 {
			t.Fatal(r.status, string(r.body))
		}
		// Received yesterday: fine.
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/deceased/D-NEW", body: deceased(1, "received", now.Add(-24*time.Hour).Format(time.RFC3339))}); r.status != 200 {
			t.Fatal(r.status)
		}
		// Cremated long ago: no warning.
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/deceased/D-DONE", body: deceased(1, "cremated", now.Add(-20*24*time.Hour).Format(time.RFC3339))}); r.status != 200 {
			t.Fatal(r.status)
		}
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/halls/H-1", body: hall(1, 1)}); r.status != 200 {
			t.Fatal(r.status)
		}
		h.do(t, req{method: "PUT", path: "/partner/v1/halls/H-2", body: hall(1, -1)}) // an error
		h.clock.Advance(4 * 24 * time.Hour)
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/halls/H-3", body: hall(1, 1)}); r.status != 200 {
			t.Fatal(r.status)
		}
		ov, err := h.api.Overview(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var fh HomeStatus
		for _, p := range ov.Partners {
			if p.PartnerID == "funeral.fh01" {
				fh = p
			}
		}
		if len(fh.Cremation) != 1 || fh.Cremation[0].ID != "D-OLD" || fh.Cremation[0].Threshold != 5 {
			t.Errorf("cremation warnings %+v", fh.Cremation)
		}
		if len(fh.Stale) != 1 || fh.Stale[0].ID != "H-1" {
			t.Errorf("stale %+v", fh.Stale)
		}
		if !fh.LastSync.Equal(h.clock.Now().Truncate(time.Millisecond)) {
			t.Errorf("last sync %v, want %v", fh.LastSync, h.clock.Now())
		}
		if fh.CallsHour != 1 || fh.ErrorsHour != 0 {
			t.Errorf("last hour: %d calls, %d errors", fh.CallsHour, fh.ErrorsHour)
		}
		rec := httptest.NewRecorder()
		h.api.OpsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/?format=json", nil))
		if !bytes.Contains(rec.Body.Bytes(), []byte(`"D-OLD"`)) {
			t.Errorf("ops JSON: %s", rec.Body)
		}
		rec = httptest.NewRecorder()
		h.api.OpsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if !strings.Contains(rec.Body.String(), "D-OLD") || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
			t.Errorf("ops HTML: %s", rec.Body)
		}
		// Mounted in the console: inside its layout, labels from its dictionary.
		ms, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "monitor.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer ms.Close()
		con, err := console.New(console.Deps{Store: ms, Clock: h.clock})
		if err != nil {
			t.Fatal(err)
		}
		con.Mount("nav_funeral", "funeral/", h.api.OpsHandler())
		rec = httptest.NewRecorder()
		con.ServeHTTP(rec, httptest.NewRequest("GET", "/funeral/", nil))
		for _, want := range []string{"殡葬交换", `class="active"`, "火化预警", "D-OLD", "礼厅 H-1", "/static/console.css"} {
			if !strings.Contains(rec.Body.String(), want) {
				t.Errorf("ops in the console lacks %q: %s", want, rec.Body)
			}
		}
		if strings.Contains(rec.Body.String(), "data-untranslated") {
			t.Errorf("ops in the console has untranslated labels: %s", rec.Body)
		}
	})
}

func TestBureauReadsEveryPartner(t *testing.T) {
	h := newHarness(t, storetest.Open(t), nil)
	for _, rq := range []req{
		{method: "PUT", path: "/partner/v1/halls/H-1", body: hall(1, 1)},
		{method: "PUT", path: "/partner/v1/halls/H-2", body: hall(1, 2)},
		{key: "cm01-k1", method: "PUT", path: "/partner/v1/institution", body: institution("cemetery")},
	} {
		if r := h.do(t, rq); r.status != 200 {
			t.Fatalf("%s: %d %s", rq.path, r.status, r.body)
		}
	}
	if r := h.do(t, req{method: "DELETE", path: "/partner/v1/halls/H-2"}); r.status != 204 {
		t.Fatal(r.status)
	}
	bureau := httptest.NewServer(h.api.BureauHandler("/internal/funeral"))
	defer bureau.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(bureau.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := get("/internal/funeral/v1/hall")
	if items, _ := m["items"].([]any); code != 200 || len(items) != 2 {
		t.Fatalf("halls: %d %v", code, m)
	}
	code, m = get("/internal/funeral/v1/institution?partner_id=cemetery.cm01")
	if items, _ := m["items"].([]any); code != 200 || len(items) != 1 {
		t.Fatalf("institution: %d %v", code, m)
	}
	if code, _ := get("/internal/funeral/v1/coffin"); code != 404 {
		t.Fatalf("unknown kind: %d", code)
	}
	if code, _ := get("/internal/funeral/v1/hall?page_size=0"); code != 422 {
		t.Fatalf("bad page size: %d", code)
	}
}

// TestRunRelaysWithinSeconds runs the API's relay loop: a push is on the
// bus well within a second (the portal shows current resources).
func TestRunRelaysWithinSeconds(t *testing.T) {
	h := newHarness(t, storetest.Open(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.api.Run(ctx) }()
	defer func() { cancel(); <-done }()
	start := time.Now()
	if r := h.do(t, req{method: "PUT", path: "/partner/v1/halls/H-9", body: hall(1, 1)}); r.status != 200 {
		t.Fatal(r.status)
	}
	late := time.After(3 * time.Second) // the promise under test: seconds at most
	for {
		n, more := h.bus.published()
		if n == 1 {
			return
		}
		select {
		case <-more:
		case <-late:
			t.Fatalf("%d messages on the bus after %s", n, time.Since(start))
		}
	}
}
