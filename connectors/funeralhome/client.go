package funeralhome

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-resty/resty/v2"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/security/sign"
)

// Slot is a bookable time span.
type Slot struct {
	StartAt string `json:"start_at"`
	EndAt   string `json:"end_at"`
}

// Availability is the answer of GET /booking/v1/availability.
type Availability struct {
	Date         string `json:"date"`
	ResourceType string `json:"resource_type"`
	Resources    []struct {
		ResourceID string `json:"resource_id"`
		Name       string `json:"name"`
		Category   string `json:"category,omitempty"`
		PriceFen   int64  `json:"price_fen,omitempty"`
		Slots      []Slot `json:"slots"`
	} `json:"resources"`
}

// Contact is the family's contact person.
type Contact struct {
	Name     string `json:"name"`
	Relation string `json:"relation,omitempty"`
	Phone    string `json:"phone"`
}

// ReservationRequest is the body of POST /booking/v1/reservations.
type ReservationRequest struct {
	HubReference string  `json:"hub_reference"`
	ResourceType string  `json:"resource_type"`
	ResourceID   string  `json:"resource_id"`
	StartAt      string  `json:"start_at"`
	EndAt        string  `json:"end_at"`
	DeceasedName string  `json:"deceased_name"`
	Contact      Contact `json:"contact"`
	Remarks      string  `json:"remarks,omitempty"`
}

// Reservation is a home's answer about a reservation.
type Reservation struct {
	ReservationID string `json:"reservation_id"`
	HubReference  string `json:"hub_reference"`
	ResourceType  string `json:"resource_type"`
	ResourceID    string `json:"resource_id"`
	StartAt       string `json:"start_at"`
	EndAt         string `json:"end_at"`
	Status        string `json:"status"`
	PriceFen      int64  `json:"price_fen,omitempty"`
}

// RemoteError is a problem answered by the home.
type RemoteError struct {
	Status int
	Code   string
	Detail string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("funeral home answered %d %s: %s", e.Status, e.Code, e.Detail)
}

// ErrSlotUnavailable matches a slot_unavailable answer with errors.Is.
var ErrSlotUnavailable = errors.New("slot unavailable")

// Is lets errors.Is(err, ErrSlotUnavailable) match.
func (e *RemoteError) Is(target error) bool {
	return target == ErrSlotUnavailable && e.Code == "slot_unavailable"
}

// Client calls one funeral home's booking API: signed (HMAC-SM3), with a
// deadline per call, a circuit breaker and a rate limit.
type Client struct {
	cfg     Config
	http    *resty.Client
	breaker *gobreaker.CircuitBreaker[*resty.Response]
	limit   *rate.Limiter
}

// NewClient returns a client signing with keyID and secret.
func NewClient(cfg Config, secret []byte) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: &sign.Transport{KeyID: cfg.KeyID, Secret: secret}}
	rc := resty.NewWithClient(hc).SetBaseURL(strings.TrimSuffix(cfg.BaseURL, "/")).SetTimeout(cfg.Timeout)
	cb := gobreaker.NewCircuitBreaker[*resty.Response](gobreaker.Settings{
		Name: "funeral-booking:" + cfg.Partner, Timeout: cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
	})
	return &Client{cfg: cfg, http: rc, breaker: cb, limit: rate.NewLimiter(rate.Limit(cfg.RatePerSecond), int(cfg.RatePerSecond)+1)}, nil
}

// do sends a request through the limiter and breaker. 5xx answers and
// transport errors count against the breaker; 4xx answers do not.
func (c *Client) do(ctx context.Context, method, path, idemKey string, body, out any) error {
	if err := c.limit.Wait(ctx); err != nil {
		return err
	}
	resp, err := c.breaker.Execute(func() (*resty.Response, error) {
		r := c.http.R().SetContext(ctx).SetHeader("Accept", "application/json")
		if idemKey != "" {
			r.SetHeader("Idempotency-Key", idemKey)
		}
		if body != nil {
			b, _ := json.Marshal(body)
			r.SetHeader("Content-Type", "application/json").SetBody(b)
		}
		resp, err := r.Execute(method, path)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode() >= 500 {
			return resp, fmt.Errorf("funeral home %s: %s %s: %d", c.cfg.Partner, method, path, resp.StatusCode())
		}
		return resp, nil
	})
	if err != nil {
		return fmt.Errorf("funeral home %s: %s %s: %w", c.cfg.Partner, method, path, err)
	}
	if resp.StatusCode() >= 400 {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(resp.Body(), &p)
		return connectors.Permanent(&RemoteError{Status: resp.StatusCode(), Code: p.Code, Detail: p.Detail})
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return fmt.Errorf("funeral home %s: %s %s: decode answer: %w", c.cfg.Partner, method, path, err)
		}
	}
	return nil
}

// Availability asks for free slots of halls or vehicles on a date (YYYY-MM-DD).
func (c *Client) Availability(ctx context.Context, resourceType, date string) (Availability, error) {
	var out Availability
	q := url.Values{"resource_type": {resourceType}, "date": {date}}
	err := c.do(ctx, http.MethodGet, "/booking/v1/availability?"+q.Encode(), "", nil, &out)
	return out, err
}

// Reserve books a slot; idemKey makes a retry safe.
func (c *Client) Reserve(ctx context.Context, idemKey string, req ReservationRequest) (Reservation, error) {
	var out Reservation
	err := c.do(ctx, http.MethodPost, "/booking/v1/reservations", idemKey, req, &out)
	return out, err
}

// Reservation reads a reservation.
func (c *Client) Reservation(ctx context.Context, id string) (Reservation, error) {
	var out Reservation
	err := c.do(ctx, http.MethodGet, "/booking/v1/reservations/"+url.PathEscape(id), "", nil, &out)
	return out, err
}

// Cancel cancels a reservation; cancelling twice answers the same.
func (c *Client) Cancel(ctx context.Context, idemKey, id, reason string) (Reservation, error) {
	var out Reservation
	err := c.do(ctx, http.MethodPost, "/booking/v1/reservations/"+url.PathEscape(id)+"/cancel", idemKey, map[string]string{"reason": reason}, &out)
	return out, err
}
