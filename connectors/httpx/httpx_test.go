package httpx

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
)

func TestSinkSend(t *testing.T) {
	cases := []struct {
		name      string
		statuses  []int // answers in order, last repeats
		retries   int
		wantErr   bool
		permanent bool
		calls     int
	}{
		{"ok", []int{200}, 0, false, false, 1},
		{"5xx retried within the call", []int{503, 502, 201}, 2, false, false, 3},
		{"5xx without retries", []int{503}, 0, true, false, 1},
		{"4xx is permanent", []int{400}, 3, true, true, 1},
		{"429 is retried", []int{429, 200}, 1, false, false, 2},
		{"404 is permanent", []int{404}, 2, true, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			var gotKey, gotBody string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1)) - 1
				gotKey = r.Header.Get("Idempotency-Key")
				b := make([]byte, 100)
				k, _ := r.Body.Read(b)
				gotBody = string(b[:k])
				w.WriteHeader(tc.statuses[min(n, len(tc.statuses)-1)])
			}))
			defer srv.Close()
			cfg := DefaultSinkConfig()
			cfg.URL = srv.URL
			cfg.Retries = tc.retries
			cfg.RetryWait = time.Millisecond
			s, err := NewSink(*cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), bus.Message{IdempotencyKey: "k-1", Body: []byte(`{"a":1}`)})
			if (err != nil) != tc.wantErr || errors.Is(err, connectors.ErrPermanent) != tc.permanent {
				t.Fatalf("err = %v (permanent %v), want err %v permanent %v", err, errors.Is(err, connectors.ErrPermanent), tc.wantErr, tc.permanent)
			}
			if int(calls.Load()) != tc.calls {
				t.Errorf("calls = %d, want %d", calls.Load(), tc.calls)
			}
			if gotKey != "k-1" || gotBody != `{"a":1}` {
				t.Errorf("partner got key %q body %q", gotKey, gotBody)
			}
		})
	}
}

func TestBreakerOpensAndDeadline(t *testing.T) {
	var calls atomic.Int32
	// The partner never answers: its handler holds each call until the
	// client gives up (the request context) or the test ends.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := DefaultSinkConfig()
	cfg.URL = srv.URL
	cfg.Timeout = 20 * time.Millisecond
	cfg.BreakerFailures = 2
	cfg.BreakerOpen = time.Hour
	s, err := NewSink(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		err := s.Send(context.Background(), bus.Message{Body: []byte("x")})
		if err == nil || time.Since(t0) > 150*time.Millisecond {
			t.Fatalf("call %d: err %v after %v, want a deadline error", i, err, time.Since(t0))
		}
	}
	err = s.Send(context.Background(), bus.Message{Body: []byte("x")})
	if !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("third call: %v, want circuit open", err)
	}
	if calls.Load() != 2 {
		t.Errorf("partner saw %d calls, want 2", calls.Load())
	}
}

func TestRateLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	cfg := DefaultSinkConfig()
	cfg.URL = srv.URL
	cfg.RatePerSecond = 20
	cfg.RateBurst = 1
	s, _ := NewSink(*cfg)
	t0 := time.Now()
	for i := 0; i < 5; i++ {
		if err := s.Send(context.Background(), bus.Message{}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(t0); d < 180*time.Millisecond {
		t.Fatalf("5 calls at 20/s took %v", d)
	}
}

func TestDelivered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status/known%2F1" || r.URL.RawPath == "/status/known%2F1" {
			return
		}
		w.WriteHeader(404)
	}))
	defer srv.Close()
	cfg := DefaultSinkConfig()
	cfg.URL = srv.URL + "/in"
	cfg.StatusURL = srv.URL + "/status/{key}"
	s, _ := NewSink(*cfg)
	for key, want := range map[string]bool{"known/1": true, "other": false} {
		got, err := s.Delivered(context.Background(), bus.Message{IdempotencyKey: key})
		if err != nil || got != want {
			t.Errorf("Delivered(%s) = %v %v, want %v", key, got, err, want)
		}
	}
}

// TestSource runs in a testing/synctest bubble: synctest.Wait tells when
// Run has taken over (it then waits for its context).
func TestSource(t *testing.T) { synctest.Test(t, testSource) }

func testSource(t *testing.T) {
	src := NewSource(*DefaultSourceConfig())
	var mu sync.Mutex
	var got []bus.Message
	fail := false
	emit := func(ctx context.Context, msgs ...bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("bus down")
		}
		if err := ctx.Err(); err != nil {
			return err // as the bus does when its caller gives up
		}
		msgs[0].IdempotencyKey = "computed"
		got = append(got, msgs...)
		return nil
	}
	// Not running yet: 503.
	rec := httptest.NewRecorder()
	src.ServeHTTP(rec, httptest.NewRequest("POST", "/routes/x", strings.NewReader("{}")))
	if rec.Code != 503 {
		t.Fatalf("before Run: %d", rec.Code)
	}
	select {
	case <-src.Running():
		t.Fatal("Running closed before Run")
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx, emit); close(done) }()
	defer func() { cancel(); <-done }()
	synctest.Wait() // Run accepts now: it waits for its context
	select {
	case <-src.Running():
	default:
		t.Fatal("Running not closed once Run accepts requests")
	}
	cases := []struct {
		name   string
		method string
		body   string
		fail   bool
		want   int
	}{
		{"accepted", "POST", `{"a":1}`, false, 202},
		{"bus failure", "POST", `{"a":2}`, true, 503},
		{"method", "GET", ``, false, 405},
		{"too large", "POST", strings.Repeat("x", 11<<20), false, 413},
	}
	for _, tc := range cases { // no t.Run inside a bubble
		mu.Lock()
		fail = tc.fail
		mu.Unlock()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, "/routes/x", strings.NewReader(tc.body))
		req.Header.Set("Idempotency-Key", "given")
		src.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d: %.200s", tc.name, rec.Code, tc.want, rec.Body)
		}
	}
	if len(got) != 1 || string(got[0].Body) != `{"a":1}` {
		t.Fatalf("emitted %v", got)
	}
	// A client that went away while its message was published: the publish
	// is not cut by its context, and the message is answered 202.
	gone, stop := context.WithCancel(context.Background())
	stop()
	rec = httptest.NewRecorder()
	src.ServeHTTP(rec, httptest.NewRequestWithContext(gone, "POST", "/routes/x", strings.NewReader(`{"a":3}`)))
	if rec.Code != 202 || len(got) != 2 {
		t.Fatalf("client gone: status %d, emitted %d, want 202 and the message on the bus", rec.Code, len(got))
	}
}

func TestSpecValidates(t *testing.T) {
	spec := Spec()
	c := spec.Sink.NewConfig().(*SinkConfig)
	if err := c.Validate(); err == nil {
		t.Error("sink without url validated")
	}
	if _, err := spec.Sink.New(c, connectors.Deps{}); err == nil {
		t.Error("sink without url built")
	}
	if err := spec.Source.NewConfig().(*SourceConfig).Validate(); err != nil {
		t.Errorf("default source: %v", err)
	}
	c.URL = "ftp://x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "url") {
		t.Errorf("bad url: %v", err)
	}
	if c.Timeout != 10*time.Second || c.BreakerFailures != 5 {
		t.Errorf("sink defaults not filled: timeout %s, breaker_failures %d", c.Timeout, c.BreakerFailures)
	}
}

// TestSendOutcomeInDoubt: a failure after the request was written is in
// doubt and a POST is then not retried within the call (the partner may
// have it); a failure before anything left is "not sent"; an answer is
// neither.
func TestSendOutcomeInDoubt(t *testing.T) {
	// A listener that is closed at once: dialling it is refused.
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()
	cases := []struct {
		name    string
		handler func(w http.ResponseWriter, r *http.Request)
		url     string
		breaker bool // open the breaker first
		doubt   bool
		notSent bool
		posts   int32
	}{
		{"partner holds the request past the deadline", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client give up
			<-r.Context().Done()
		}, "", false, true, false, 1},
		{"connection lost after the request", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, "", false, true, false, 1},
		{"503 answer", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "", false, false, false, 4},
		{"connection refused", nil, refusedURL, false, false, true, 0},
		{"circuit open", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "", true, false, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var posts atomic.Int32
			u := tc.url
			if tc.handler != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost {
						posts.Add(1)
					}
					tc.handler(w, r)
				}))
				defer srv.Close()
				u = srv.URL
			}
			cfg := DefaultSinkConfig()
			cfg.URL = u
			cfg.Timeout = 200 * time.Millisecond
			cfg.Retries = 3
			cfg.RetryWait = time.Millisecond
			cfg.BreakerFailures = 1
			if !tc.breaker {
				cfg.BreakerFailures = 100
			}
			cfg.BreakerOpen = time.Hour
			s, err := NewSink(*cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.breaker {
				_ = s.Send(context.Background(), bus.Message{Body: []byte("x")}) // trips it
			}
			err = s.Send(context.Background(), bus.Message{IdempotencyKey: "k", Body: []byte("x")})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := errors.Is(err, connectors.ErrInDoubt); got != tc.doubt {
				t.Errorf("in doubt = %v, want %v: %v", got, tc.doubt, err)
			}
			if got := errors.Is(err, connectors.ErrNotSent); got != tc.notSent {
				t.Errorf("not sent = %v, want %v: %v", got, tc.notSent, err)
			}
			if n := posts.Load(); n != tc.posts {
				t.Errorf("partner got %d POSTs, want %d", n, tc.posts)
			}
		})
	}
}

// TestStatusHasItsOwnBreaker: sends that time out open the send breaker;
// the status query still reaches the partner.
func TestStatusHasItsOwnBreaker(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	cfg := DefaultSinkConfig()
	cfg.URL = srv.URL + "/in"
	cfg.StatusURL = srv.URL + "/status/{key}"
	cfg.Timeout = 50 * time.Millisecond
	cfg.BreakerFailures = 1
	cfg.BreakerOpen = time.Hour
	s, err := NewSink(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.CanCheckDelivery() {
		t.Fatal("CanCheckDelivery false with a status_url")
	}
	if err := s.Send(context.Background(), bus.Message{IdempotencyKey: "k", Body: []byte("x")}); !errors.Is(err, connectors.ErrInDoubt) {
		t.Fatalf("slow send: %v, want in doubt", err)
	}
	if err := s.Send(context.Background(), bus.Message{IdempotencyKey: "k2", Body: []byte("x")}); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("second send: %v, want circuit open", err)
	}
	ok, err := s.Delivered(context.Background(), bus.Message{IdempotencyKey: "k"})
	if err != nil || !ok {
		t.Fatalf("Delivered = %v %v, want true", ok, err)
	}
	cfg.StatusURL = ""
	if s2, _ := NewSink(*cfg); s2.CanCheckDelivery() {
		t.Error("CanCheckDelivery true without a status_url")
	}
}

// eventLog records monitor events.
type eventLog struct {
	mu  sync.Mutex
	evs []monitor.Event
}

func (l *eventLog) Emit(e monitor.Event) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }

func (l *eventLog) codes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.evs {
		out = append(out, e.ErrorCode+"/"+string(e.Status)+"/"+e.Partner+"/"+e.ErrorClass)
	}
	return out
}

// TestBreakerChangesReachTheMonitor: a sink built for a route with a
// partner reports its breaker opening (warning) and closing again (ok) as
// that partner's failed events of class "breaker", from which the monitor
// raises and resolves partner_down; a client nobody observes reports
// nothing.
func TestBreakerChangesReachTheMonitor(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	cfg := DefaultSinkConfig()
	cfg.URL = srv.URL
	cfg.Retries = 0
	cfg.BreakerFailures = 2
	cfg.BreakerOpen = 20 * time.Millisecond
	log := &eventLog{}
	sk, err := Spec().Sink.New(cfg, connectors.Deps{Events: log, Partner: "samr"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := sk.Send(context.Background(), bus.Message{Body: []byte("x")}); err == nil {
			t.Fatal("a 503 was taken for delivered")
		}
	}
	if got := log.codes(); len(got) != 1 || got[0] != "breaker_open/warning/samr/breaker" {
		t.Fatalf("after the breaker opened: %v", got)
	}
	down.Store(false)
	deadline := time.Now().Add(time.Minute)
	for sk.Send(context.Background(), bus.Message{Body: []byte("x")}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the breaker never let a call through again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := []string{"breaker_open/warning/samr/breaker", "breaker_half-open/warning/samr/breaker", "breaker_closed/ok/samr/breaker"}
	if got := log.codes(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// Unobserved: the same trip reports nothing.
	down.Store(true)
	quiet, err := NewSink(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := len(log.codes())
	for range 3 {
		_ = quiet.Send(context.Background(), bus.Message{Body: []byte("x")})
	}
	if len(log.codes()) != n {
		t.Fatalf("an unobserved client reported: %v", log.codes()[n:])
	}
}
