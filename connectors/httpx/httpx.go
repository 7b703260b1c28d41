package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/problem"
)

func init() {
	connectors.Register(Spec())
}

// Spec is the "http" connector kind: a source serving an inbound endpoint
// (SourceConfig) and a sink calling a partner's URL (SinkConfig), which
// also answers enrich lookups.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:    "http",
		Summary: "HTTP: inbound endpoint (source) and outbound calls (sink, lookups) with deadline, circuit breaker, rate limit and retries",
		Source: &connectors.SourceSpec{
			NewConfig: func() any { return DefaultSourceConfig() },
			New: func(cfg any, _ connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*SourceConfig)
				if !ok {
					return nil, fmt.Errorf("http source: config is %T, want *httpx.SourceConfig", cfg)
				}
				if err := c.Validate(); err != nil {
					return nil, err
				}
				return NewSource(*c), nil
			},
		},
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return DefaultSinkConfig() },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c, ok := cfg.(*SinkConfig)
				if !ok {
					return nil, fmt.Errorf("http sink: config is %T, want *httpx.SinkConfig", cfg)
				}
				if err := c.Validate(); err != nil {
					return nil, err
				}
				s, err := NewSink(*c)
				if err != nil {
					return nil, err
				}
				s.Observe(deps.Events, deps.Partner)
				return s, nil
			},
		},
	}
}

// Sink sends messages to a URL.
type Sink struct {
	cfg SinkConfig
	c   *Client
	// status asks the status URL: a client of its own, so that a breaker
	// opened by slow sends (each of them in doubt) does not keep the
	// engine from asking whether they arrived.
	status *Client
}

// NewSink returns a sink.
func NewSink(cfg SinkConfig) (*Sink, error) {
	c, err := NewClient(cfg.URL, cfg.ClientConfig)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, c: c}
	if cfg.StatusURL != "" {
		if s.status, err = NewClient("status:"+cfg.URL, cfg.ClientConfig); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Observe reports the breaker changes of the sink's calls (not of its
// status queries) as partner's events; see Client.Observe.
func (s *Sink) Observe(events connectors.Events, partner string) { s.c.Observe(events, partner) }

func (s *Sink) headers(msg bus.Message) map[string]string {
	h := map[string]string{"Content-Type": s.cfg.ContentType}
	if s.cfg.IdempotencyHeader != "" && msg.IdempotencyKey != "" {
		h[s.cfg.IdempotencyHeader] = msg.IdempotencyKey
	}
	for _, k := range s.cfg.ForwardHeaders {
		if v, ok := msg.Headers[k]; ok {
			h[k] = v
		}
	}
	return h
}

// Send delivers msg; 2xx is success, 404 and other 4xx are permanent.
func (s *Sink) Send(ctx context.Context, msg bus.Message) error {
	resp, err := s.c.Do(ctx, Request{Method: s.cfg.Method, URL: s.cfg.URL, Headers: s.headers(msg), Body: msg.Body})
	if err != nil {
		return err
	}
	if resp.StatusCode() == 404 {
		return connectors.Permanent(statusError(Request{Method: s.cfg.Method, URL: s.cfg.URL}, resp))
	}
	return nil
}

// Request sends msg and returns the answer (enrich lookups).
func (s *Sink) Request(ctx context.Context, msg bus.Message) (bus.Message, error) {
	resp, err := s.c.Do(ctx, Request{Method: s.cfg.Method, URL: s.cfg.URL, Headers: s.headers(msg), Body: msg.Body})
	if err != nil {
		return bus.Message{}, err
	}
	if resp.StatusCode() == 404 {
		return bus.Message{}, connectors.Permanent(statusError(Request{Method: s.cfg.Method, URL: s.cfg.URL}, resp))
	}
	out := bus.Message{Headers: map[string]string{"Content-Type": resp.Header().Get("Content-Type")}, Body: resp.Body()}
	return out, nil
}

// ErrNoStatusURL is returned by Delivered without a status URL.
var ErrNoStatusURL = errors.New("httpx: no status_url configured")

// Delivered asks the status URL whether the partner has msg: 2xx yes, 404
// no; any other answer or no answer is an error (the outcome stays unknown).
func (s *Sink) Delivered(ctx context.Context, msg bus.Message) (bool, error) {
	if s.status == nil {
		return false, ErrNoStatusURL
	}
	u := strings.ReplaceAll(s.cfg.StatusURL, "{key}", url.PathEscape(msg.IdempotencyKey))
	resp, err := s.status.Do(ctx, Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return false, err
	}
	return resp.StatusCode() < 300, nil
}

// CanCheckDelivery reports whether Delivered can answer (a status_url is
// configured); without one, the route engine dead-letters a delivery in
// doubt instead of sending it again.
func (s *Sink) CanCheckDelivery() bool { return s.status != nil }

// Endpoint describes the sink for dead letters and events.
func (s *Sink) Endpoint() string { return s.cfg.Method + " " + s.cfg.URL }

// Source is an inbound endpoint. The route engine mounts it (ServeHTTP) and
// runs it (Run); a request is answered 202 only after emit returned nil,
// that is once the message is durably on the bus.
type Source struct {
	cfg     SourceConfig
	emit    atomic.Pointer[connectors.Emit]
	running chan struct{} // closed by the first Run
	once    sync.Once
}

// NewSource returns a source.
func NewSource(cfg SourceConfig) *Source { return &Source{cfg: cfg, running: make(chan struct{})} }

// Run makes the source accept requests until ctx is done.
func (s *Source) Run(ctx context.Context, emit connectors.Emit) error {
	s.emit.Store(&emit)
	s.once.Do(func() { close(s.running) })
	<-ctx.Done()
	s.emit.Store(nil)
	return nil
}

// Running returns a channel closed once Run accepts requests (the first
// time): before, a request is answered 503 route_unavailable. Whoever must
// not be turned away at start-up (a test, a readiness check) waits on it.
func (s *Source) Running() <-chan struct{} { return s.running }

// Accepted is the answer body of an accepted message.
type Accepted struct {
	// IdempotencyKey of the accepted message.
	IdempotencyKey string `json:"idempotency_key"`
}

// emitTimeout bounds a publish (the route's back pressure included) once
// the request has been read, whether or not the client still waits.
const emitTimeout = 30 * time.Second

// ServeHTTP accepts one message per request.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ok := false
	for _, m := range s.cfg.Methods {
		if r.Method == m {
			ok = true
		}
	}
	if !ok {
		w.Header().Set("Allow", strings.Join(s.cfg.Methods, ", "))
		problem.Write(w, r, problem.Problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Code: "method_not_allowed"})
		return
	}
	emit := s.emit.Load()
	if emit == nil {
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable, Title: "Route not running", Code: "route_unavailable", RetryAfter: 5})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem.Write(w, r, problem.BodyTooLarge(s.cfg.MaxBody))
			return
		}
		problem.Write(w, r, problem.Problem{Status: http.StatusBadRequest, Title: "Unreadable body", Code: "bad_body"})
		return
	}
	h := map[string]string{"content-type": r.Header.Get("Content-Type")}
	for _, k := range s.cfg.KeepHeaders {
		if v := r.Header.Get(k); v != "" {
			h[k] = v
		}
	}
	msg := bus.Message{Headers: h, Body: body}
	if s.cfg.IdempotencyHeader != "" {
		msg.IdempotencyKey = r.Header.Get(s.cfg.IdempotencyHeader)
	}
	msgs := []bus.Message{msg}
	// The publish does not depend on the caller staying: a message that
	// reaches the bus is answered 202 even if the answer can no longer
	// reach the client (a client timeout), so the hub's records and the
	// bus agree; the partner's resend is recognised by the idempotency key.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), emitTimeout)
	defer cancel()
	if err := (*emit)(ctx, msgs...); err != nil {
		if errors.Is(err, connectors.ErrPermanent) {
			problem.Write(w, r, problem.Problem{Status: http.StatusUnprocessableEntity, Title: "Message refused", Code: "message_refused", Detail: err.Error()})
			return
		}
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable, Title: "Message not accepted, retry", Code: "emit_failed", RetryAfter: 1})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(Accepted{IdempotencyKey: msgs[0].IdempotencyKey})
}

// Interface guards.
var (
	_ connectors.Sink   = (*Sink)(nil)
	_ connectors.Source = (*Source)(nil)
	_ http.Handler      = (*Source)(nil)
)

// String names the sink.
func (s *Sink) String() string { return fmt.Sprintf("http sink %s", s.cfg.URL) }
