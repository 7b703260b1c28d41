package httpx

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ClientConfig configures the transport of one partner endpoint.
type ClientConfig struct {
	// Timeout is the deadline of one call, retries included (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a transport error or a 5xx answer is retried within one call (default 0: the route retries).
	Retries int `yaml:"retries"`
	// RetryWait is the first wait between retries; it doubles up to RetryMaxWait (default 100ms).
	RetryWait time.Duration `yaml:"retry_wait"`
	// RetryMaxWait caps the wait between retries (default 2s).
	RetryMaxWait time.Duration `yaml:"retry_max_wait"`
	// RatePerSecond caps calls per second to the endpoint (0: no limit).
	RatePerSecond float64 `yaml:"rate_per_second"`
	// RateBurst is the burst of the rate limit (default: RatePerSecond rounded up).
	RateBurst int `yaml:"rate_burst"`
	// BreakerFailures is the number of consecutive failures that opens the circuit (default 5).
	BreakerFailures uint32 `yaml:"breaker_failures"`
	// BreakerOpen is how long the circuit stays open before a trial call (default 30s).
	BreakerOpen time.Duration `yaml:"breaker_open"`
	// MaxConns bounds the connections to the endpoint's host (default 256).
	MaxConns int `yaml:"max_conns"`
	// Headers are sent with every call.
	Headers map[string]string `yaml:"headers"`
}

func (c *ClientConfig) defaults() {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.RetryWait == 0 {
		c.RetryWait = 100 * time.Millisecond
	}
	if c.RetryMaxWait == 0 {
		c.RetryMaxWait = 2 * time.Second
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpen == 0 {
		c.BreakerOpen = 30 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 256
	}
}

func (c *ClientConfig) validate() []error {
	var errs []error
	if c.Timeout < 0 || c.RetryWait < 0 || c.RetryMaxWait < 0 || c.BreakerOpen < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.Retries < 0 || c.Retries > 10 {
		errs = append(errs, fmt.Errorf("retries: %d out of 0..10", c.Retries))
	}
	if c.RatePerSecond < 0 || c.RateBurst < 0 || c.MaxConns < 0 {
		errs = append(errs, errors.New("rate_per_second, rate_burst and max_conns must not be negative"))
	}
	return errs
}

// SinkConfig configures an http sink.
type SinkConfig struct {
	// ClientConfig is the transport: deadline, retries, rate limit, circuit breaker.
	ClientConfig `yaml:",inline"`
	// URL receives the messages.
	URL string `yaml:"url"`
	// Method is POST (default) or PUT.
	Method string `yaml:"method"`
	// ContentType of the body (default application/json).
	ContentType string `yaml:"content_type"`
	// IdempotencyHeader carries the message's idempotency key (default Idempotency-Key).
	IdempotencyHeader string `yaml:"idempotency_header"`
	// StatusURL, with {key} replaced by the idempotency key (URL-escaped), answers 2xx when the partner has the message and 404 when it has not; the route engine asks it (through a client and breaker of its own) when a delivery is in doubt: a send that timed out, was cancelled or lost its connection after the request was written. Without it, such a delivery is dead-lettered as in doubt, never sent again blindly (see resend_in_doubt).
	StatusURL string `yaml:"status_url"`
	// ForwardHeaders lists message headers sent along as HTTP headers.
	ForwardHeaders []string `yaml:"forward_headers"`
}

// DefaultSinkConfig returns a sink configuration with defaults.
func DefaultSinkConfig() *SinkConfig {
	c := &SinkConfig{Method: "POST", ContentType: "application/json", IdempotencyHeader: "Idempotency-Key"}
	c.defaults()
	return c
}

// Validate reports every problem.
func (c *SinkConfig) Validate() error {
	errs := c.validate()
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url: %q is not an http(s) URL", c.URL))
	}
	switch c.Method {
	case "POST", "PUT":
	default:
		errs = append(errs, fmt.Errorf("method: %q is not POST or PUT", c.Method))
	}
	if c.StatusURL != "" && !strings.Contains(c.StatusURL, "{key}") {
		errs = append(errs, errors.New("status_url: must contain {key}"))
	}
	return errors.Join(errs...)
}

// SourceConfig configures an http source (an inbound endpoint).
type SourceConfig struct {
	// Methods accepted (default [POST]).
	Methods []string `yaml:"methods"`
	// MaxBody is the largest accepted body in bytes (default 10 MiB).
	MaxBody int64 `yaml:"max_body"`
	// IdempotencyHeader, when the caller sends it, gives the message's idempotency key (default Idempotency-Key).
	IdempotencyHeader string `yaml:"idempotency_header"`
	// KeepHeaders lists request headers copied into the message headers.
	KeepHeaders []string `yaml:"keep_headers"`
}

// DefaultSourceConfig returns a source configuration with defaults.
func DefaultSourceConfig() *SourceConfig {
	return &SourceConfig{Methods: []string{"POST"}, MaxBody: 10 << 20, IdempotencyHeader: "Idempotency-Key"}
}

// Validate reports every problem.
func (c *SourceConfig) Validate() error {
	var errs []error
	if len(c.Methods) == 0 {
		errs = append(errs, errors.New("methods: at least one is required"))
	}
	for _, m := range c.Methods {
		switch m {
		case "POST", "PUT":
		default:
			errs = append(errs, fmt.Errorf("methods: %q is not POST or PUT", m))
		}
	}
	if c.MaxBody <= 0 {
		errs = append(errs, errors.New("max_body: must be positive"))
	}
	return errors.Join(errs...)
}
