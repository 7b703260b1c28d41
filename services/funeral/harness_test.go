package funeral

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/access/accesstest"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store"
)

// testPartners is a small registry: a home, a cemetery and a sandbox-only home.
func testPartners(t testing.TB) *Registry {
	t.Helper()
	reg, err := NewRegistry([]Partner{
		{ID: "funeral.fh01", Name: "测试殡仪馆一", Role: RoleFuneralHome, Environments: []string{EnvSandbox, EnvProduction}, AllowIPs: []string{"127.0.0.1", "::1"}, KeyIDs: []string{"fh01-k1"}, CremationWarnDays: 5},
		{ID: "cemetery.cm01", Name: "测试公墓一", Role: RoleCemetery, Environments: []string{EnvProduction}, AllowIPs: []string{"127.0.0.0/8"}, KeyIDs: []string{"cm01-k1"}},
		{ID: "funeral.fh02", Name: "测试殡仪馆二", Role: RoleFuneralHome, Environments: []string{EnvSandbox}, AllowIPs: []string{"127.0.0.1"}, KeyIDs: []string{"fh02-k1"}},
		{ID: "funeral.fh03", Name: "测试殡仪馆三", Role: RoleFuneralHome, Environments: []string{EnvProduction}, AllowIPs: []string{"10.9.9.9"}, KeyIDs: []string{"fh03-k1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func testSecret(keyID string) []byte { return []byte("secret-of-" + keyID + "-0123456789abcdef") }

// guarded puts the security guard in front of h as the hub does: the
// registry's partners (enabled in either environment, as the hub's one guard
// in front of the API and the sandbox), their testSecret keys, clock c (nil:
// the wall clock). The API serves the partner the guard authenticated.
func guarded(t testing.TB, reg *Registry, c clock.Clock, h http.Handler) http.Handler {
	t.Helper()
	return guardedAudit(t, reg, c, nil, h)
}

// guardedAudit is guarded with the guard's audit records going to aud.
func guardedAudit(t testing.TB, reg *Registry, c clock.Clock, aud *audittest.Recorder, h http.Handler) http.Handler {
	t.Helper()
	o := accesstest.Options{Partners: reg.AccessRules(EnvSandbox, EnvProduction), Secret: testSecret, Clock: c}
	if aud != nil {
		o.Audit = aud
	}
	return accesstest.Guard(t, o).Middleware(h)
}

type memBus struct {
	mu   sync.Mutex
	msgs []bus.Message
	fail bool
	more chan struct{} // closed by the next successful publish
}

func (b *memBus) Publish(_ context.Context, topic string, msgs ...bus.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail {
		return errors.New("bus down")
	}
	for _, m := range msgs {
		m.Topic = topic
		b.msgs = append(b.msgs, m)
	}
	if b.more != nil {
		close(b.more)
		b.more = nil
	}
	return nil
}

// published returns how many messages are on the bus and a channel closed
// by the next publish.
func (b *memBus) published() (int, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.more == nil {
		b.more = make(chan struct{})
	}
	return len(b.msgs), b.more
}

type harness struct {
	api    *API
	srv    *httptest.Server
	clock  *clock.Fake
	events *monitortest.Recorder
	audit  *audittest.Recorder // the guard's records, one per call
	bus    *memBus
	// seen records operation ids answered, for the coverage check.
	mu   sync.Mutex
	seen map[string]bool
}

func newHarness(t testing.TB, db *store.DB, mut func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RatePerSecond = 0
	if mut != nil {
		mut(&cfg)
	}
	h := &harness{clock: clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, clock.Shanghai)), events: &monitortest.Recorder{}, audit: &audittest.Recorder{}, bus: &memBus{}, seen: map[string]bool{}}
	reg := testPartners(t)
	api, err := NewAPI(context.Background(), cfg, Deps{
		Store: db, Clock: h.clock, Events: h.events, Bus: h.bus, Partners: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.api = api
	h.srv = httptest.NewServer(guardedAudit(t, reg, h.clock, h.audit, api))
	t.Cleanup(func() {
		h.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Close(ctx)
	})
	return h
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) problemCode() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
	return m
}

// req describes a test request.
type req struct {
	key, method, path string
	body              any // string for raw bytes, else marshalled
	header            map[string]string
	unsigned          bool
	contentType       string
}

// do signs and sends a request and checks the answer against the spec.
func (h *harness) do(t testing.TB, rq req) reply {
	t.Helper()
	var body []byte
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = []byte(b)
	case []byte:
		body = b
	default:
		body, _ = json.Marshal(b)
	}
	r, err := http.NewRequest(rq.method, h.srv.URL+rq.path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		r.Body = http.NoBody
	}
	if body != nil {
		ct := rq.contentType
		if ct == "" {
			ct = "application/json"
		}
		r.Header.Set("Content-Type", ct)
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	key := rq.key
	if key == "" {
		key = "fh01-k1"
	}
	if !rq.unsigned {
		if err := sign.SignAt(r, key, testSecret(key), h.clock.Now(), sign.NewNonce()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	rep := reply{status: resp.StatusCode, header: resp.Header, body: out}
	if rep.status >= 500 {
		t.Errorf("%s %s: %d: %s", rq.method, rq.path, rep.status, out)
	}
	path := rq.path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if op, _, ok := h.api.spec.Find(rq.method, path); ok {
		for _, breach := range h.api.spec.CheckResponse(op, rep.status, resp.Header.Get("Content-Type"), out) {
			t.Errorf("answer breaks the spec: %s\nbody: %s", breach, out)
		}
		if rep.status < 400 {
			h.mu.Lock()
			h.seen[op.ID] = true
			h.mu.Unlock()
		}
		if rq.body != nil && op.RequestSchema != "" && rep.status < 300 {
			if fes, _ := h.api.spec.ValidateJSON(op.RequestSchema, body); len(fes) > 0 {
				t.Errorf("accepted a request that breaks %s: %+v", op.RequestSchema, fes)
			}
		}
	} else if rep.status < 400 {
		t.Errorf("%s %s answered %d but is not in the spec", rq.method, path, rep.status)
	}
	return rep
}

func signAt(r *http.Request, key string, t time.Time, nonce string) error {
	return sign.SignAt(r, key, testSecret(key), t, nonce)
}
