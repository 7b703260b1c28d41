package soap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"text/template"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
)

func init() {
	connectors.Register(Spec())
}

// Spec is the "soap" connector kind: a sink calling a partner's
// WebService operation with each message rendered through a request template.
func Spec() connectors.Spec {
	return connectors.Spec{
		Name:    "soap",
		Summary: "SOAP 1.1/1.2 WebService calls (sink, lookups) from request templates, optional WS-Security UsernameToken, faults mapped to retryable or permanent; same deadline, circuit breaker, rate limit and retries as http",
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return DefaultConfig() },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c, ok := cfg.(*Config)
				if !ok {
					return nil, fmt.Errorf("soap sink: config is %T, want *soap.Config", cfg)
				}
				s, err := New(*c)
				if err != nil {
					return nil, err
				}
				s.Observe(deps.Events, deps.Partner)
				return s, nil
			},
		},
	}
}

// Config configures one WebService endpoint.
type Config struct {
	// ClientConfig is the transport: deadline, retries, rate limit, circuit breaker.
	httpx.ClientConfig `yaml:",inline"`
	// URL is the service endpoint.
	URL string `yaml:"url"`
	// Version is the SOAP version, 1.1 (default) or 1.2.
	Version string `yaml:"version"`
	// Action is the SOAPAction (1.1 header, 1.2 content-type parameter).
	Action string `yaml:"action"`
	// Template renders the Body content of the request (Go text/template);
	// it sees .Body (the message body as a string), .Key (the idempotency
	// key) and .Headers. The default sends the message body as is.
	Template string `yaml:"template"`
	// Username turns on a WS-Security UsernameToken with this user.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the token's password.
	PasswordEnv string `yaml:"password_env"`
	// PasswordDigest sends the password as PasswordDigest instead of PasswordText.
	PasswordDigest bool `yaml:"password_digest"`
	// StatusAction is the SOAPAction of the partner's status or lookup-by-key operation; the route engine calls it (through a client and breaker of its own) when a delivery is in doubt: an answer without fault means the partner has the message, a fault named in not_found_faults that it has not, anything else that it cannot tell. Empty: a delivery in doubt is dead-lettered as in doubt, never sent again blindly (see resend_in_doubt).
	StatusAction string `yaml:"status_action"`
	// StatusTemplate renders the Body content of the status request (Go text/template; .Key, .Body, .Headers as in template).
	StatusTemplate string `yaml:"status_template"`
	// NotFoundFaults are the fault codes, subcodes or reason texts with which the status operation says it never received the key (e.g. UnknownKey).
	NotFoundFaults []string `yaml:"not_found_faults"`
}

// DefaultConfig returns a configuration with defaults.
func DefaultConfig() *Config {
	return &Config{Version: V11, Template: "{{.Body}}"}
}

// Validate reports every problem; it does no I/O.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url: %q is not an http(s) URL", c.URL))
	}
	if c.Version != V11 && c.Version != V12 {
		errs = append(errs, fmt.Errorf("version: %q is not 1.1 or 1.2", c.Version))
	}
	if _, err := template.New("t").Option("missingkey=error").Parse(c.Template); err != nil {
		errs = append(errs, fmt.Errorf("template: %w", err))
	}
	if c.StatusAction != "" {
		if c.StatusTemplate == "" || len(c.NotFoundFaults) == 0 {
			errs = append(errs, errors.New("status_action: needs status_template and not_found_faults"))
		}
		if _, err := template.New("t").Option("missingkey=error").Parse(c.StatusTemplate); err != nil {
			errs = append(errs, fmt.Errorf("status_template: %w", err))
		}
	} else if c.StatusTemplate != "" || len(c.NotFoundFaults) > 0 {
		errs = append(errs, errors.New("status_template, not_found_faults: need status_action"))
	}
	if c.Username == "" && (c.PasswordEnv != "" || c.PasswordDigest) {
		errs = append(errs, errors.New("password_env, password_digest: need username"))
	}
	if c.ClientConfig.Timeout < 0 || c.ClientConfig.Retries < 0 || c.ClientConfig.RatePerSecond < 0 {
		errs = append(errs, errors.New("timeout, retries and rate_per_second must not be negative"))
	}
	return errors.Join(errs...)
}

// Client calls one WebService endpoint. It is safe for concurrent use.
type Client struct {
	cfg   Config
	tmpl  *template.Template
	http  *httpx.Client
	token *UsernameToken
	now   func() time.Time
	// status calls the status operation: a client of its own, so that a
	// breaker tripped by sends that time out does not keep the engine from
	// asking.
	status     *httpx.Client
	statusTmpl *template.Template
}

var (
	_ connectors.Sink = (*Client)(nil)
	_ interface {
		Delivered(context.Context, bus.Message) (bool, error)
		CanCheckDelivery() bool
	} = (*Client)(nil)
)

// New returns a client (and sink) for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("soap %s: %w", cfg.URL, err)
	}
	hc, err := httpx.NewClient("soap:"+cfg.URL, cfg.ClientConfig)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, http: hc, now: time.Now}
	c.tmpl = template.Must(template.New("soap").Option("missingkey=error").Parse(cfg.Template))
	if cfg.StatusAction != "" {
		if c.status, err = httpx.NewClient("soap-status:"+cfg.URL, cfg.ClientConfig); err != nil {
			return nil, err
		}
		c.statusTmpl = template.Must(template.New("status").Option("missingkey=error").Parse(cfg.StatusTemplate))
	}
	if cfg.Username != "" {
		c.token = &UsernameToken{Username: cfg.Username, Password: os.Getenv(cfg.PasswordEnv), Digest: cfg.PasswordDigest}
	}
	return c, nil
}

// Observe reports the breaker changes of the client's calls (not of its
// status queries) as partner's events (httpx.Client.Observe).
func (c *Client) Observe(events connectors.Events, partner string) { c.http.Observe(events, partner) }

// WithToken sets the UsernameToken (a password from the key provider
// instead of the environment).
func (c *Client) WithToken(t UsernameToken) *Client { c.token = &t; return c }

// Call sends body (the operation element) under action (empty: the
// configured action) and returns the content of the answer's Body. A fault
// is returned as *Fault, wrapped with connectors.ErrPermanent unless it is
// retryable; transport failures are httpx's.
func (c *Client) Call(ctx context.Context, action string, body []byte) ([]byte, error) {
	return c.call(ctx, c.http, action, body)
}

func (c *Client) call(ctx context.Context, hc *httpx.Client, action string, body []byte) ([]byte, error) {
	if action == "" {
		action = c.cfg.Action
	}
	var header []byte
	if c.token != nil {
		h, err := c.token.header(c.now())
		if err != nil {
			return nil, err
		}
		header = h
	}
	hdrs := map[string]string{"Content-Type": ContentType(c.cfg.Version, action)}
	if c.cfg.Version == V11 {
		hdrs["SOAPAction"] = `"` + action + `"`
	}
	resp, err := hc.Do(ctx, httpx.Request{Method: "POST", URL: c.cfg.URL, Headers: hdrs, Body: Envelope(c.cfg.Version, header, body)})
	if resp != nil && len(resp.Body()) > 0 {
		inner, fault, perr := Parse(resp.Body())
		switch {
		case fault != nil && fault.Retryable():
			return nil, fmt.Errorf("soap %s %s: %w", c.cfg.URL, action, fault)
		case fault != nil:
			return nil, connectors.Permanent(fmt.Errorf("soap %s %s: %w", c.cfg.URL, action, fault))
		case perr == nil && err == nil && resp.StatusCode() < 300:
			return inner, nil
		case err == nil:
			return nil, connectors.Permanent(fmt.Errorf("soap %s %s: status %d: %w", c.cfg.URL, action, resp.StatusCode(), perr))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("soap %s %s: %w", c.cfg.URL, action, err)
	}
	return nil, connectors.Permanent(fmt.Errorf("soap %s %s: status %d: %w", c.cfg.URL, action, resp.StatusCode(), ErrNotSOAP))
}

// Send renders msg through the template and calls the operation.
func (c *Client) Send(ctx context.Context, msg bus.Message) error {
	var b bytes.Buffer
	if err := c.tmpl.Execute(&b, map[string]any{"Body": string(msg.Body), "Key": msg.IdempotencyKey, "Headers": msg.Headers}); err != nil {
		return connectors.Permanent(fmt.Errorf("soap %s: template: %w", c.cfg.URL, err))
	}
	_, err := c.Call(ctx, "", b.Bytes())
	return err
}

// Request calls the operation with msg and returns the answer's Body
// content (enrich lookups).
func (c *Client) Request(ctx context.Context, msg bus.Message) (bus.Message, error) {
	var b bytes.Buffer
	if err := c.tmpl.Execute(&b, map[string]any{"Body": string(msg.Body), "Key": msg.IdempotencyKey, "Headers": msg.Headers}); err != nil {
		return bus.Message{}, connectors.Permanent(fmt.Errorf("soap %s: template: %w", c.cfg.URL, err))
	}
	out, err := c.Call(ctx, "", b.Bytes())
	if err != nil {
		return bus.Message{}, err
	}
	return bus.Message{Headers: map[string]string{"Content-Type": "application/xml"}, Body: out}, nil
}

// Endpoint describes the sink for dead letters and events.
func (c *Client) Endpoint() string { return "SOAP " + c.cfg.URL + " " + c.cfg.Action }

// ErrNoStatusAction is returned by Delivered without a status_action.
var ErrNoStatusAction = errors.New("soap: no status_action configured")

// Delivered calls the status operation for msg: an answer without fault
// means the partner has it, a fault named in not_found_faults that it has
// not; any other fault or failure is an error (still in doubt).
func (c *Client) Delivered(ctx context.Context, msg bus.Message) (bool, error) {
	if c.status == nil {
		return false, ErrNoStatusAction
	}
	var b bytes.Buffer
	if err := c.statusTmpl.Execute(&b, map[string]any{"Body": string(msg.Body), "Key": msg.IdempotencyKey, "Headers": msg.Headers}); err != nil {
		return false, fmt.Errorf("soap %s: status template: %w", c.cfg.URL, err)
	}
	_, err := c.call(ctx, c.status, c.cfg.StatusAction, b.Bytes())
	if err == nil {
		return true, nil
	}
	var f *Fault
	if errors.As(err, &f) {
		for _, nf := range c.cfg.NotFoundFaults {
			if nf != "" && (f.Code == nf || f.Subcode == nf || f.Reason == nf) {
				return false, nil
			}
		}
	}
	return false, err
}

// CanCheckDelivery reports whether Delivered can answer (a status_action
// is configured); the route engine treats a sink without one as a sink that
// cannot be asked.
func (c *Client) CanCheckDelivery() bool { return c.status != nil }
