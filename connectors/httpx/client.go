package httpx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Client is the shared HTTP transport: deadline, circuit breaker, rate
// limit and bounded retries around resty. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	rc      *resty.Client
	breaker *gobreaker.CircuitBreaker[*resty.Response]
	limit   *rate.Limiter
	obs     atomic.Pointer[breakerObserver]
}

// StatusError is a non-2xx answer.
type StatusError struct {
	// Method and URL of the call.
	Method, URL string
	// Status is the HTTP status code.
	Status int
	// Body is the start of the answer (at most 512 bytes).
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Body)
}

// ErrCircuitOpen means the breaker refused the call.
var ErrCircuitOpen = errors.New("httpx: circuit open")

// NewClient returns a client for one endpoint (name labels the breaker).
func NewClient(name string, cfg ClientConfig) (*Client, error) {
	cfg.defaults()
	if err := errors.Join(cfg.validate()...); err != nil {
		return nil, fmt.Errorf("httpx %s: %w", name, err)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		MaxConnsPerHost:     cfg.MaxConns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	rc := resty.NewWithClient(&http.Client{Transport: tr}).SetTimeout(cfg.Timeout)
	for k, v := range cfg.Headers {
		rc.SetHeader(k, v)
	}
	c := &Client{cfg: cfg, rc: rc}
	c.breaker = gobreaker.NewCircuitBreaker[*resty.Response](gobreaker.Settings{
		Name:          "httpx:" + name,
		Timeout:       cfg.BreakerOpen,
		ReadyToTrip:   func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= cfg.BreakerFailures },
		OnStateChange: func(_ string, _, to gobreaker.State) { c.breakerChanged(to) },
	})
	if cfg.RatePerSecond > 0 {
		b := cfg.RateBurst
		if b == 0 {
			b = int(cfg.RatePerSecond + 0.999)
		}
		c.limit = rate.NewLimiter(rate.Limit(cfg.RatePerSecond), b)
	}
	return c, nil
}

// breakerObserver is where a client reports its breaker's changes.
type breakerObserver struct {
	events  connectors.Events
	partner string
}

// Observe makes the client report each change of its circuit breaker to
// events as a failed event of partner with error class "breaker" and code
// breaker_open, breaker_half-open or breaker_closed (status warning, or ok
// once closed), the events the monitor's partner_down alert and the
// console's partner cells are made from (the SFTP client reports the
// same). A client nobody observes (or observed with an empty partner)
// reports nothing.
func (c *Client) Observe(events connectors.Events, partner string) {
	if events == nil || partner == "" {
		c.obs.Store(nil)
		return
	}
	c.obs.Store(&breakerObserver{events: events, partner: partner})
}

func (c *Client) breakerChanged(to gobreaker.State) {
	o := c.obs.Load()
	if o == nil {
		return
	}
	st := monitor.Warning
	if to == gobreaker.StateClosed {
		st = monitor.OK
	}
	o.events.Emit(monitor.Event{Type: monitor.Failed, Status: st, Partner: o.partner, Channel: "http", Direction: monitor.Outbound,
		ErrorClass: "breaker", ErrorCode: "breaker_" + to.String()})
}

// Request describes one call.
type Request struct {
	Method  string
	URL     string
	Headers map[string]string
	Body    []byte
}

// Do performs the call with retries. It returns the answer for 2xx and 404
// (callers decide what 404 means); other statuses become *StatusError,
// permanent (connectors.ErrPermanent) for 4xx except 408 and 429.
//
// A failure is marked connectors.ErrNotSent when nothing reached the
// partner (dial error, circuit open, rate limit) and connectors.ErrInDoubt
// when the request was written and no answer came (timeout, cancel,
// connection lost): the partner may have it. A call in doubt is not retried
// here unless its method is GET or HEAD (a POST or PUT could be a second
// payment); the caller decides (the route engine asks the status URL).
func (c *Client) Do(ctx context.Context, req Request) (*resty.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	wait := c.cfg.RetryWait
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, req)
		if err == nil || attempt >= c.cfg.Retries || errors.Is(err, connectors.ErrPermanent) || ctx.Err() != nil {
			return resp, err
		}
		if errors.Is(err, connectors.ErrInDoubt) && req.Method != http.MethodGet && req.Method != http.MethodHead {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, c.cfg.RetryMaxWait)
	}
}

func (c *Client) once(ctx context.Context, req Request) (*resty.Response, error) {
	if c.limit != nil {
		if err := c.limit.Wait(ctx); err != nil {
			return nil, connectors.NotSent(fmt.Errorf("%s %s: rate limit: %w", req.Method, req.URL, err))
		}
	}
	// wrote tells whether any of the request reached the connection: a
	// failure after that is in doubt, one before it is a clear refusal.
	var wrote atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	resp, err := c.breaker.Execute(func() (*resty.Response, error) {
		r := c.rc.R().SetContext(tctx)
		for k, v := range req.Headers {
			r.SetHeader(k, v)
		}
		if req.Body != nil {
			r.SetBody(req.Body)
		}
		resp, err := r.Execute(req.Method, req.URL)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode() >= 500 || resp.StatusCode() == 408 || resp.StatusCode() == 429 {
			return resp, statusError(req, resp)
		}
		return resp, nil
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, connectors.NotSent(fmt.Errorf("%s %s: %w", req.Method, req.URL, ErrCircuitOpen))
	}
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			return resp, err
		}
		err = fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
		if wrote.Load() {
			return nil, connectors.InDoubt(err)
		}
		return nil, connectors.NotSent(err)
	}
	if s := resp.StatusCode(); s >= 300 && s != 404 {
		return resp, connectors.Permanent(statusError(req, resp))
	}
	return resp, nil
}

func statusError(req Request, resp *resty.Response) *StatusError {
	b := resp.Body()
	if len(b) > 512 {
		b = b[:512]
	}
	return &StatusError{Method: req.Method, URL: req.URL, Status: resp.StatusCode(), Body: string(b)}
}
