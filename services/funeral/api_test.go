package funeral

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func hall(version int, price int) map[string]any {
	return map[string]any{"version": version, "name": "长青厅", "category": "large", "capacity": 300, "price_fen": price, "status": "available"}
}

func deceased(version int, status, received string) map[string]any {
	return map[string]any{"version": version, "name": "李某某", "gender": "female", "id_number": "310101194501010024",
		"body_status": status, "status_at": received, "received_at": received,
		"contact": map[string]any{"name": "李四", "relation": "女", "phone": "13900001111"}}
}

func institution(typ string) map[string]any {
	return map[string]any{"version": 1, "name": "上海市测试殡仪馆", "type": typ, "credit_code": "12310000425012345X",
		"division_code": "310104", "address": "上海市徐汇区某路 1 号", "phone": "021-64000000",
		"service_guide": map[string]any{"summary": "一站式服务", "procedures": []string{"预约", "火化"}}}
}

// TestPartnerAPI runs the contract cases of the partner API on every dialect.
func TestPartnerAPI(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		type tc struct {
			name       string
			rq         req
			wantStatus int
			wantCode   string
			wantField  string
			check      func(t *testing.T, r reply)
		}
		cases := []tc{
			{name: "put hall", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(1, 280000)}, wantStatus: 200,
				check: func(t *testing.T, r reply) {
					if r.header.Get("ETag") != `"1"` {
						t.Errorf("ETag %q", r.header.Get("ETag"))
					}
				}},
			{name: "replay same version and content", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(1, 280000)}, wantStatus: 200,
				check: func(t *testing.T, r reply) {
					if r.json(t)["revision"].(float64) != 1 {
						t.Errorf("replay changed the revision: %s", r.body)
					}
				}},
			{name: "same version other content", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(1, 1)}, wantStatus: 409, wantCode: "version_conflict"},
			{name: "newer version", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(2, 300000), header: map[string]string{"If-Match": `"1"`}}, wantStatus: 200},
			{name: "stale version", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(1, 280000)}, wantStatus: 409, wantCode: "stale_version"},
			{name: "if-match mismatch", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(3, 1), header: map[string]string{"If-Match": `"1"`}}, wantStatus: 412, wantCode: "precondition_failed"},
			{name: "integral version written with a fraction", rq: req{method: "PUT", path: "/partner/v1/halls/H-F", body: `{"version":2.0,"name":"a","category":"large","capacity":1e1,"price_fen":100,"status":"available"}`}, wantStatus: 200,
				check: func(t *testing.T, r reply) {
					m := r.json(t)
					if m["version"].(float64) != 2 || !strings.Contains(string(r.body), `"capacity":10`) || strings.Contains(string(r.body), `2.0`) {
						t.Errorf("numbers not normalised: %s", r.body)
					}
				}},
			{name: "get hall", rq: req{method: "GET", path: "/partner/v1/halls/H-001"}, wantStatus: 200,
				check: func(t *testing.T, r reply) {
					d := r.json(t)["data"].(map[string]any)
					if d["price_fen"].(float64) != 300000 {
						t.Errorf("stored %v", d)
					}
				}},
			{name: "negative price", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: hall(1, -5)}, wantStatus: 422, wantCode: "validation_failed", wantField: "/price_fen"},
			{name: "unknown field", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `{"version":1,"name":"a","category":"large","capacity":1,"price_fen":1,"status":"available","colour":"x"}`}, wantStatus: 422, wantCode: "validation_failed"},
			{name: "price as float", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `{"version":1,"name":"a","category":"large","capacity":1,"price_fen":1.5,"status":"available"}`}, wantStatus: 422, wantField: "/price_fen"},
			{name: "malformed json", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `{"version":`}, wantStatus: 400, wantCode: "bad_json"},
			{name: "array body", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `[1,2]`}, wantStatus: 422, wantCode: "validation_failed"},
			{name: "wrong content type", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `{}`, contentType: "text/plain"}, wantStatus: 415, wantCode: "unsupported_media_type"},
			{name: "body too large", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `{"name":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`}, wantStatus: 413, wantCode: "body_too_large"},
			// Under the one limit (over the 256 KiB this API once had): read, then refused for its content.
			{name: "large body under the limit", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: `{"name":"` + strings.Repeat("x", 300<<10) + `"}`}, wantStatus: 422, wantCode: "validation_failed"},
			{name: "GBK bytes in a field", rq: req{method: "PUT", path: "/partner/v1/halls/H-002", body: "{\"version\":1,\"name\":\"\xb3\xa4\xc7\xe0\",\"category\":\"large\",\"capacity\":1,\"price_fen\":1,\"status\":\"available\"}"}, wantStatus: 422, wantCode: "validation_failed", wantField: "/name"},
			{name: "invalid UTF-8 in a nested field", rq: req{method: "PUT", path: "/partner/v1/deceased/D-9", body: "{\"version\":1,\"name\":\"李某某\",\"gender\":\"female\",\"id_number\":\"310101194501010024\",\"body_status\":\"received\",\"status_at\":\"2026-11-20T10:00:00+08:00\",\"received_at\":\"2026-11-20T10:00:00+08:00\",\"contact\":{\"name\":\"\xff\xfe\",\"relation\":\"女\",\"phone\":\"13900001111\"}}"}, wantStatus: 422, wantField: "/contact/name"},
			{name: "bad path id", rq: req{method: "PUT", path: "/partner/v1/halls/-bad", body: hall(1, 1)}, wantStatus: 422, wantField: "id (path)"},
			{name: "bad idempotency key", rq: req{method: "PUT", path: "/partner/v1/halls/H-003", body: hall(1, 1), header: map[string]string{"Idempotency-Key": "x"}}, wantStatus: 422, wantField: "Idempotency-Key (header)"},
			{name: "cemetery may not push halls", rq: req{key: "cm01-k1", method: "PUT", path: "/partner/v1/halls/H-009", body: hall(1, 1)}, wantStatus: 403, wantCode: "forbidden"},
			{name: "unsigned", rq: req{method: "GET", path: "/partner/v1/halls", unsigned: true}, wantStatus: 401, wantCode: "signature_missing"},
			{name: "unknown key", rq: req{key: "nobody-k1", method: "GET", path: "/partner/v1/halls"}, wantStatus: 401, wantCode: "unknown_key"},
			{name: "ip not allowed", rq: req{key: "fh03-k1", method: "GET", path: "/partner/v1/halls"}, wantStatus: 403, wantCode: "ip_not_allowed"},
			{name: "sandbox-only partner in production", rq: req{key: "fh02-k1", method: "GET", path: "/partner/v1/halls"}, wantStatus: 403, wantCode: "forbidden"},
			{name: "method not allowed", rq: req{method: "POST", path: "/partner/v1/halls/H-001", body: `{}`}, wantStatus: 405, wantCode: "method_not_allowed"},
			{name: "unknown path", rq: req{method: "GET", path: "/partner/v1/coffins"}, wantStatus: 404, wantCode: "not_found"},
			{name: "deceased bad id check digit", rq: req{method: "PUT", path: "/partner/v1/deceased/D-1", body: func() map[string]any {
				d := deceased(1, "received", "2026-11-20T10:00:00+08:00")
				d["id_number"] = "310101194501010025"
				return d
			}()}, wantStatus: 422, wantField: "/id_number"},
			{name: "deceased time without offset", rq: req{method: "PUT", path: "/partner/v1/deceased/D-1", body: deceased(1, "received", "2026-11-20T10:00:00")}, wantStatus: 422, wantField: "/status_at"},
			{name: "deceased stored masked", rq: req{method: "PUT", path: "/partner/v1/deceased/D-1", body: deceased(1, "stored", "2026-11-20T10:00:00+08:00")}, wantStatus: 200,
				check: func(t *testing.T, r reply) {
					s := string(r.body)
					if strings.Contains(s, "310101194501010024") || strings.Contains(s, "13900001111") {
						t.Errorf("answer shows a whole ID or phone: %s", s)
					}
					if !strings.Contains(s, "310***********0024") || !strings.Contains(s, "139****1111") {
						t.Errorf("answer lacks the masked forms: %s", s)
					}
				}},
			{name: "schedule slot ends before it starts", rq: req{method: "PUT", path: "/partner/v1/schedules/S-1", body: map[string]any{"version": 1, "resource_type": "hall", "resource_id": "H-001", "date": "2026-11-28",
				"slots": []any{map[string]any{"start_at": "2026-11-28T10:00:00+08:00", "end_at": "2026-11-28T09:00:00+08:00", "state": "free"}}}}, wantStatus: 422, wantField: "/slots/0/end_at"},
			{name: "schedule slot on another day", rq: req{method: "PUT", path: "/partner/v1/schedules/S-1", body: map[string]any{"version": 1, "resource_type": "hall", "resource_id": "H-001", "date": "2026-11-28",
				"slots": []any{map[string]any{"start_at": "2026-11-28T23:00:00Z", "end_at": "2026-11-28T23:30:00Z", "state": "free"}}}}, wantStatus: 422, wantField: "/slots/0/start_at"},
			{name: "institution type must fit the role", rq: req{method: "PUT", path: "/partner/v1/institution", body: institution("cemetery")}, wantStatus: 422, wantField: "/type"},
			{name: "institution", rq: req{method: "PUT", path: "/partner/v1/institution", body: institution("funeral_home")}, wantStatus: 200},
			{name: "get institution", rq: req{method: "GET", path: "/partner/v1/institution"}, wantStatus: 200},
			{name: "cemetery institution missing", rq: req{key: "cm01-k1", method: "GET", path: "/partner/v1/institution"}, wantStatus: 404, wantCode: "not_found"},
			{name: "burial", rq: req{key: "cm01-k1", method: "PUT", path: "/partner/v1/burials/B-1", body: map[string]any{"version": 1, "deceased_name": "王某某", "burial_date": "2026-11-20", "burial_type": "tree", "plot_code": "松园-3-112"}}, wantStatus: 200},
			{name: "funeral home may not push burials", rq: req{method: "PUT", path: "/partner/v1/burials/B-1", body: map[string]any{"version": 1, "deceased_name": "王某某", "burial_date": "2026-11-20", "burial_type": "tree", "plot_code": "x"}}, wantStatus: 403},
			{name: "list burials of cemetery", rq: req{key: "cm01-k1", method: "GET", path: "/partner/v1/burials"}, wantStatus: 200},
			{name: "bad page size", rq: req{method: "GET", path: "/partner/v1/halls?page_size=0"}, wantStatus: 422, wantField: "page_size (query)"},
			{name: "bad page token", rq: req{method: "GET", path: "/partner/v1/halls?page_token=!!"}, wantStatus: 422, wantField: "page_token (query)"},
			{name: "empty updated_since", rq: req{method: "GET", path: "/partner/v1/halls?updated_since="}, wantStatus: 422, wantField: "updated_since (query)"},
			{name: "empty page_size", rq: req{method: "GET", path: "/partner/v1/halls?page_size="}, wantStatus: 422, wantField: "page_size (query)"},
			{name: "empty credit list filter", rq: req{method: "GET", path: "/partner/v1/credit-list?list="}, wantStatus: 422, wantField: "list (query)"},
			{name: "empty idempotency key", rq: req{method: "PUT", path: "/partner/v1/halls/H-003", body: hall(1, 1), header: map[string]string{"Idempotency-Key": ""}}, wantStatus: 422, wantField: "Idempotency-Key (header)"},
			{name: "delete with overlong If-Match", rq: req{method: "DELETE", path: "/partner/v1/halls/H-003", header: map[string]string{"If-Match": strings.Repeat("0", 65)}}, wantStatus: 422, wantField: "If-Match (header)"},
			{name: "bad updated_since", rq: req{method: "GET", path: "/partner/v1/halls?updated_since=yesterday"}, wantStatus: 422},
			{name: "delete hall", rq: req{method: "DELETE", path: "/partner/v1/halls/H-001"}, wantStatus: 204},
			{name: "delete hall again", rq: req{method: "DELETE", path: "/partner/v1/halls/H-001"}, wantStatus: 204},
			{name: "deleted hall is gone", rq: req{method: "GET", path: "/partner/v1/halls/H-001"}, wantStatus: 404},
			{name: "delete missing", rq: req{method: "DELETE", path: "/partner/v1/halls/H-404"}, wantStatus: 404},
			{name: "re-create after delete needs a higher version", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(2, 300000)}, wantStatus: 409, wantCode: "stale_version"},
			{name: "re-create after delete", rq: req{method: "PUT", path: "/partner/v1/halls/H-001", body: hall(3, 300000)}, wantStatus: 200},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := h.do(t, c.rq)
				if r.status != c.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.body)
				}
				if c.wantStatus >= 400 {
					if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
						t.Errorf("content type %q", ct)
					}
				}
				if c.wantCode != "" && r.problemCode() != c.wantCode {
					t.Errorf("code %q, want %q: %s", r.problemCode(), c.wantCode, r.body)
				}
				if c.wantField != "" && !strings.Contains(string(r.body), `"field":"`+c.wantField+`"`) {
					t.Errorf("no error for field %s: %s", c.wantField, r.body)
				}
				if c.check != nil {
					c.check(t, r)
				}
			})
		}
		t.Run("nonce reuse", func(t *testing.T) {
			r, _ := http.NewRequest("GET", h.srv.URL+"/partner/v1/halls", http.NoBody)
			if err := signAt(r, "fh01-k1", h.clock.Now(), "nonce-0123456789abcdef"); err != nil {
				t.Fatal(err)
			}
			r2 := r.Clone(context.Background())
			for i, want := range []int{200, 401} {
				rr := r
				if i == 1 {
					rr = r2
				}
				resp, err := http.DefaultClient.Do(rr)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("attempt %d: %d, want %d", i+1, resp.StatusCode, want)
				}
			}
		})
		t.Run("raw ID never stored", func(t *testing.T) {
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM funeral_records WHERE data LIKE '%310101194501010024%' OR data LIKE '%13900001111%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d rows hold a whole ID or phone number", n)
			}
		})
		// The guard answers the calls it refuses (signature, key, allowlist,
		// nonce): it audits them, and the API never sees them. Every other
		// call is a monitor event of the API.
		t.Run("every call is audited, every call that reaches the API is an event", func(t *testing.T) {
			const refusedByGuard = 5 // body too large (the guard enforces the one body limit first), unsigned, unknown key, ip not allowed, nonce reused
			if n := len(h.audit.Records()); n < len(cases)+2 {
				t.Fatalf("%d audit records for %d+ calls", n, len(cases)+2)
			}
			var denied []string
			for _, r := range h.audit.Records() {
				if r.Outcome == audit.OutcomeDenied {
					denied = append(denied, r.Detail)
				}
			}
			if len(denied) != refusedByGuard {
				t.Errorf("guard refusals audited: %q, want %d", denied, refusedByGuard)
			}
			evs := h.events.Events()
			if len(evs) < len(cases)+2-refusedByGuard {
				t.Fatalf("%d events for %d+ calls that reached the API", len(evs), len(cases)+2-refusedByGuard)
			}
			var rejected, received int
			for _, e := range evs {
				switch e.Type {
				case "rejected":
					rejected++
					if e.ErrorCode == "" {
						t.Errorf("rejected event without code: %+v", e)
					}
				case "received":
					received++
				}
			}
			if rejected == 0 || received == 0 {
				t.Fatalf("received %d, rejected %d", received, rejected)
			}
		})
	})
}

func TestIdempotencyKey(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		key := map[string]string{"Idempotency-Key": "idem-0001-abcdef"}
		first := h.do(t, req{method: "PUT", path: "/partner/v1/vehicles/V-1", body: map[string]any{"version": 1, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 60000, "status": "available"}, header: key})
		if first.status != 200 {
			t.Fatalf("%d %s", first.status, first.body)
		}
		// A newer version lands in between; the retried first request still gets its first answer.
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/vehicles/V-1", body: map[string]any{"version": 2, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 65000, "status": "available"}}); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		again := h.do(t, req{method: "PUT", path: "/partner/v1/vehicles/V-1", body: map[string]any{"version": 1, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 60000, "status": "available"}, header: key})
		if again.status != 200 || string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %d %s (first %s)", again.status, again.body, first.body)
		}
		other := h.do(t, req{method: "PUT", path: "/partner/v1/vehicles/V-1", body: map[string]any{"version": 3, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 1, "status": "available"}, header: key})
		if other.status != 422 || other.problemCode() != "idempotency_key_reused" {
			t.Fatalf("reuse: %d %s", other.status, other.body)
		}
	})
}

func TestPagination(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, nil)
		for i := 0; i < 5; i++ {
			if r := h.do(t, req{method: "PUT", path: fmt.Sprintf("/partner/v1/halls/H-%d", i), body: hall(1, 100*i)}); r.status != 200 {
				t.Fatal(r.status)
			}
		}
		// Another partner's records are never listed.
		seen := map[string]bool{}
		path := "/partner/v1/halls?page_size=2"
		pages := 0
		for {
			r := h.do(t, req{method: "GET", path: path})
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			pages++
			m := r.json(t)
			for _, it := range m["items"].([]any) {
				id := it.(map[string]any)["id"].(string)
				if seen[id] {
					t.Fatalf("%s listed twice", id)
				}
				seen[id] = true
			}
			tok, _ := m["next_page_token"].(string)
			if tok == "" {
				break
			}
			path = "/partner/v1/halls?page_size=2&page_token=" + tok
		}
		if len(seen) != 5 || pages != 3 {
			t.Fatalf("saw %d records in %d pages", len(seen), pages)
		}
		h.clock.Advance(time.Hour)
		if r := h.do(t, req{method: "PUT", path: "/partner/v1/halls/H-0", body: hall(2, 1)}); r.status != 200 {
			t.Fatal(r.status)
		}
		r := h.do(t, req{method: "GET", path: "/partner/v1/halls?updated_since=" + url.QueryEscape(h.clock.Now().Add(-time.Minute).Format(time.RFC3339))})
		if items := r.json(t)["items"].([]any); len(items) != 1 {
			t.Fatalf("updated_since: %d items", len(items))
		}
	})
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, storetest.Open(t), func(c *Config) { c.RatePerSecond, c.RateBurst = 0.01, 2 })
	var limited bool
	for i := 0; i < 4; i++ {
		r := h.do(t, req{method: "GET", path: "/partner/v1/halls"})
		if r.status == 429 {
			limited = r.problemCode() == "rate_limited" && r.header.Get("Retry-After") != ""
		}
	}
	if !limited {
		t.Fatal("no 429 rate_limited with Retry-After after the burst")
	}
}
