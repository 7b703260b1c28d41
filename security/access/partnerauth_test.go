package access

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var (
	t0      = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	secret1 = []byte("fh-01 secret of thirty-two bytes")
)

type fixture struct {
	auth  *PartnerAuth
	audit *audittest.Recorder
	clock *clock.Fake
	h     http.Handler
}

func newFixture(t *testing.T, mutate func(*security.PartnerAPIConfig)) *fixture {
	t.Helper()
	ctx := context.Background()
	kp := keys.NewFile(t.TempDir())
	for id, s := range map[string][]byte{"fh-01-a": secret1, "district-104": []byte("district secret of 32 bytes....."), "off-01": []byte("off secret")} {
		if err := kp.Put(ctx, keys.PartnerPrefix+id, s); err != nil {
			t.Fatal(err)
		}
	}
	cfg := security.DefaultConfig().PartnerAPI
	cfg.MaxBodyBytes = 2048
	cfg.TrustedProxies = []string{"192.0.2.0/24"}
	cfg.Partners = []security.PartnerAccess{
		{ID: "funeral-home-01", KeyIDs: []string{"fh-01-a", "fh-01-b"}, MTLSSubjects: []string{"fh01.example"}, AllowCIDRs: []string{"10.1.0.0/16"}, AllowPaths: []string{"/partner/v1/funeral/"}},
		{ID: "district-310104", KeyIDs: []string{"district-104"}, AllowCIDRs: []string{"10.2.0.9/32"}, MatchParams: map[string][]string{"district": {"310104"}}},
		{ID: "off", KeyIDs: []string{"off-01"}, AllowCIDRs: []string{"0.0.0.0/0"}, Disabled: true},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	fa := &audittest.Recorder{}
	fc := clock.NewFake(t0)
	a, err := New(Options{Config: cfg, Keys: kp, Nonces: NewMemoryNonces(), Audit: fa, Clock: fc, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := security.PartnerFrom(r.Context())
		if !ok {
			t.Error("no partner in context")
		}
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "boom", 500)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(map[string]string{"partner": p.ID, "key_id": p.KeyID, "method": p.Method, "ip": p.SourceIP, "body": string(body)})
	})
	return &fixture{auth: a, audit: fa, clock: fc, h: a.Middleware(inner)}
}

type req struct {
	method, target, body, ip, keyID, nonce string
	secret                                 []byte
	at                                     time.Time
	xff                                    string
	unsigned                               bool
}

func (f *fixture) do(t *testing.T, q req) *httptest.ResponseRecorder {
	t.Helper()
	if q.method == "" {
		q.method = "POST"
	}
	if q.ip == "" {
		q.ip = "10.1.2.3"
	}
	if q.keyID == "" {
		q.keyID = "fh-01-a"
	}
	if q.secret == nil {
		q.secret = secret1
	}
	if q.at.IsZero() {
		q.at = f.clock.Now()
	}
	if q.nonce == "" {
		q.nonce = sign.NewNonce()
	}
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, q.target, body)
	r.RemoteAddr = q.ip + ":40000"
	if q.xff != "" {
		r.Header.Set("X-Forwarded-For", q.xff)
	}
	if !q.unsigned {
		if err := sign.SignAt(r, q.keyID, q.secret, q.at, q.nonce); err != nil {
			t.Fatal(err)
		}
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func code(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code < 400 {
		return ""
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		return "" // the handler's own answer, not a refusal
	}
	var p struct{ Code string }
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p.Code
}

func TestMiddleware(t *testing.T) {
	const halls = "/partner/v1/funeral/halls"
	tests := []struct {
		name    string
		q       req
		status  int
		code    string
		actor   string
		outcome string
	}{
		{"signed ok", req{target: halls, body: `{"a":1}`}, 200, "", "partner:funeral-home-01", audit.OutcomeSuccess},
		{"handler failure", req{target: halls + "?fail=1"}, 500, "", "partner:funeral-home-01", audit.OutcomeFailure},
		{"unsigned", req{target: halls, unsigned: true}, 401, "signature_missing", "ip:10.1.2.3", audit.OutcomeDenied},
		{"unknown key", req{target: halls, keyID: "nobody"}, 401, "unknown_key", "key:nobody", audit.OutcomeDenied},
		{"configured key without secret", req{target: halls, keyID: "fh-01-b"}, 401, "unknown_key", "key:fh-01-b", audit.OutcomeDenied},
		{"disabled partner", req{target: halls, keyID: "off-01", secret: []byte("off secret")}, 401, "unknown_key", "key:off-01", audit.OutcomeDenied},
		{"wrong secret", req{target: halls, secret: []byte("guess")}, 401, "signature_invalid", "key:fh-01-a", audit.OutcomeDenied},
		{"expired", req{target: halls, at: t0.Add(-6 * time.Minute)}, 401, "timestamp_expired", "key:fh-01-a", audit.OutcomeDenied},
		{"too large", req{target: halls, body: strings.Repeat("x", 3000)}, 413, "body_too_large", "key:fh-01-a", audit.OutcomeDenied},
		{"ip not allowed", req{target: halls, ip: "10.9.9.9"}, 403, "ip_not_allowed", "partner:funeral-home-01", audit.OutcomeDenied},
		{"spoofed xff from untrusted peer", req{target: halls, ip: "10.9.9.9", xff: "10.1.2.3"}, 403, "ip_not_allowed", "partner:funeral-home-01", audit.OutcomeDenied},
		{"xff via trusted proxy", req{target: halls, ip: "192.0.2.10", xff: "10.1.2.3"}, 200, "", "partner:funeral-home-01", audit.OutcomeSuccess},
		{"xff via trusted proxy, outside", req{target: halls, ip: "192.0.2.10", xff: "10.1.2.3, 172.16.0.1"}, 403, "ip_not_allowed", "partner:funeral-home-01", audit.OutcomeDenied},
		{"path not allowed", req{target: "/partner/v1/cemetery/burials"}, 403, "forbidden", "partner:funeral-home-01", audit.OutcomeDenied},
		{"param match", req{target: "/partner/v1/verify?district=310104", keyID: "district-104", secret: []byte("district secret of 32 bytes....."), ip: "10.2.0.9"}, 200, "", "partner:district-310104", audit.OutcomeSuccess},
		{"param mismatch", req{target: "/partner/v1/verify?district=310105", keyID: "district-104", secret: []byte("district secret of 32 bytes....."), ip: "10.2.0.9"}, 403, "param_not_allowed", "partner:district-310104", audit.OutcomeDenied},
		{"param missing", req{target: "/partner/v1/verify", keyID: "district-104", secret: []byte("district secret of 32 bytes....."), ip: "10.2.0.9"}, 403, "param_not_allowed", "partner:district-310104", audit.OutcomeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.do(t, tt.q)
			if w.Code != tt.status || code(t, w) != tt.code {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, tt.status, tt.code)
			}
			if n := len(f.audit.Records()); n != 1 {
				t.Fatalf("%d audit records, want 1", n)
			}
			rec, _ := f.audit.Last()
			if rec.Actor != tt.actor || rec.Outcome != tt.outcome || rec.Action != "partner_api.call" || rec.RequestID == "" || rec.SourceIP == "" || !strings.Contains(rec.Object, "/partner/v1/") {
				t.Fatalf("audit record %+v", rec)
			}
			if w.Header().Get("X-Request-Id") != rec.RequestID {
				t.Fatalf("request id %q vs audit %q", w.Header().Get("X-Request-Id"), rec.RequestID)
			}
		})
	}
}

func TestIdentityInContext(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, req{target: "/partner/v1/funeral/halls", body: `{"hall":"H1"}`})
	var got map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	want := map[string]string{"partner": "funeral-home-01", "key_id": "fh-01-a", "method": security.AuthHMAC, "ip": "10.1.2.3", "body": `{"hall":"H1"}`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestReplay(t *testing.T) {
	f := newFixture(t, nil)
	q := req{target: "/partner/v1/funeral/halls", body: "{}", nonce: "0123456789abcdef0123"}
	if w := f.do(t, q); w.Code != 200 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	f.clock.Advance(time.Minute)
	q.at = t0
	if w := f.do(t, q); code(t, w) != "nonce_reused" {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t, func(c *security.PartnerAPIConfig) {
		c.Partners[0].Rate, c.Partners[0].Burst = 1, 2
		c.IPRate, c.IPBurst = 1, 3
	})
	for i := 0; i < 2; i++ {
		if w := f.do(t, req{target: "/partner/v1/funeral/halls"}); w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	w := f.do(t, req{target: "/partner/v1/funeral/halls"})
	if code(t, w) != "rate_limited" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("partner limit: %d %s", w.Code, w.Body)
	}
	// The IP bucket (burst 3) is empty now too, even for an unsigned call.
	if w := f.do(t, req{target: "/partner/v1/funeral/halls", unsigned: true}); code(t, w) != "rate_limited" {
		t.Fatalf("ip limit: %d %s", w.Code, w.Body)
	}
	// Another address is not limited by the first one's bucket.
	if w := f.do(t, req{target: "/partner/v1/funeral/halls", unsigned: true, ip: "10.1.2.4"}); code(t, w) != "signature_missing" {
		t.Fatalf("other ip: %d %s", w.Code, w.Body)
	}
	f.clock.Advance(2 * time.Second)
	if w := f.do(t, req{target: "/partner/v1/funeral/halls"}); w.Code != 200 {
		t.Fatalf("after refill: %d %s", w.Code, w.Body)
	}
}

// TestRateLimitsSharedByReplicas: with four replicas, each allows a
// quarter of the partner's rate and burst (never below one request), and
// buckets already in use follow when the count changes.
func TestRateLimitsSharedByReplicas(t *testing.T) {
	f := newFixture(t, func(c *security.PartnerAPIConfig) {
		c.Partners[0].Rate, c.Partners[0].Burst = 4, 8
		c.IPRate, c.IPBurst = 100, 100
	})
	allowed := func() int {
		n := 0
		for range 20 {
			if f.do(t, req{target: "/partner/v1/funeral/halls"}).Code == 200 {
				n++
			}
		}
		return n
	}
	if n := allowed(); n != 8 {
		t.Fatalf("one replica: %d of 20 allowed, want the burst of 8", n)
	}
	f.auth.SetReplicas(4)
	f.clock.Advance(10 * time.Second) // refills: 1 request/s, burst 2 here
	if n := allowed(); n != 2 {
		t.Fatalf("four replicas: %d of 20 allowed, want 2", n)
	}
	f.clock.Advance(time.Second)
	if n := allowed(); n != 1 {
		t.Fatalf("four replicas, one second later: %d allowed, want 1", n)
	}
	f.auth.SetReplicas(16) // burst 8/16 rounds up to one request
	f.clock.Advance(10 * time.Second)
	if n := allowed(); n != 1 {
		t.Fatalf("sixteen replicas: %d allowed, want 1", n)
	}
	f.auth.SetReplicas(0) // counts as one
	f.clock.Advance(10 * time.Second)
	if n := allowed(); n != 8 {
		t.Fatalf("back to one replica: %d allowed, want 8", n)
	}
}

func TestMTLS(t *testing.T) {
	f := newFixture(t, nil)
	for _, tt := range []struct {
		cn     string
		status int
	}{{"fh01.example", 200}, {"stranger.example", 401}} {
		r := httptest.NewRequest("GET", "/partner/v1/funeral/halls", nil)
		r.RemoteAddr = "10.1.0.5:1234"
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: tt.cn}}}}}
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Fatalf("%s: %d %s", tt.cn, w.Code, w.Body)
		}
	}
	if rec := f.audit.Records()[0]; rec.Actor != "partner:funeral-home-01" || !strings.Contains(rec.Detail, "auth=mtls") {
		t.Fatalf("audit %+v", rec)
	}
}

func TestSQLNonces(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, err := NewSQLNonces(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewSQLNonces(ctx, db) // a second replica
		if err != nil {
			t.Fatal(err)
		}
		exp := t0.Add(10 * time.Minute)
		for i, tt := range []struct {
			s     NonceStore
			nonce string
			now   time.Time
			want  bool
		}{
			{a, "n1", t0, true},
			{b, "n1", t0, false},
			{a, "n1", t0.Add(5 * time.Minute), false},
			{b, "n2", t0, true},
			{b, "n1", t0.Add(11 * time.Minute), true}, // expired: fresh again
			{a, "n1", t0.Add(12 * time.Minute), false},
		} {
			got, err := tt.s.Use(ctx, "k", tt.nonce, tt.now, exp)
			if i == 4 {
				got, err = tt.s.Use(ctx, "k", tt.nonce, tt.now, tt.now.Add(10*time.Minute))
			}
			if err != nil || got != tt.want {
				t.Fatalf("step %d: %v %v", i, got, err)
			}
		}
	})
}

func TestWithAuditLog(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	log, err := audit.Open(ctx, db, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	kp := keys.NewFile(t.TempDir())
	_ = kp.Put(ctx, "partner/fh-01-a", secret1)
	cfg := security.DefaultConfig().PartnerAPI
	cfg.Partners = []security.PartnerAccess{{ID: "funeral-home-01", KeyIDs: []string{"fh-01-a"}, AllowCIDRs: []string{"127.0.0.0/8"}}}
	nonces, err := NewSQLNonces(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Config: cfg, Keys: kp, Nonces: nonces, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()
	client := &http.Client{Transport: &sign.Transport{KeyID: "fh-01-a", Secret: secret1}}
	for _, c := range []*http.Client{client, http.DefaultClient} {
		resp, err := c.Post(srv.URL+"/partner/v1/x", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	es, err := log.List(ctx, audit.Filter{Action: "partner_api.call"})
	if err != nil || len(es) != 2 || es[0].Outcome != audit.OutcomeSuccess || es[1].Outcome != audit.OutcomeDenied {
		t.Fatalf("audit entries %+v %v", es, err)
	}
	if rep, err := log.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("verify %v %v", rep, err)
	}
}

// TestUnauthenticatedFloodIsAggregated: 500 unsigned calls from one
// address cost a handful of audit records and one count record, while
// an authenticated refusal is still recorded one by one.
func TestUnauthenticatedFloodIsAggregated(t *testing.T) {
	f := newFixture(t, func(c *security.PartnerAPIConfig) { c.IPRate, c.IPBurst = 10000, 10000 })
	th := audit.NewThrottle(f.audit, 10, time.Minute, f.clock)
	f.auth.unauth = th
	for i := 0; i < 500; i++ {
		if w := f.do(t, req{target: "/partner/v1/funeral/halls", unsigned: true, ip: "10.1.9.9"}); w.Code != 401 {
			t.Fatalf("unsigned call %d: %d", i, w.Code)
		}
	}
	if n := len(f.audit.Records()); n != 10 {
		t.Fatalf("%d audit records for 500 unsigned calls, want 10 until the minute ends", n)
	}
	f.do(t, req{target: "/partner/v1/funeral/halls", ip: "10.9.9.9"}) // signed, from the wrong address
	if rec, _ := f.audit.Last(); rec.Actor != "partner:funeral-home-01" || rec.Outcome != audit.OutcomeDenied {
		t.Fatalf("authenticated refusal: %+v", rec)
	}
	f.clock.Advance(time.Minute)
	if err := th.Flush(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if rec, _ := f.audit.Last(); !strings.Contains(rec.Detail, "aggregated: 490 more") || rec.Actor != "ip:10.1.9.9" {
		t.Fatalf("count record: %+v", rec)
	}
}
