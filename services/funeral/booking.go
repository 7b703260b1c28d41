package funeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/problem"
)

// Booking is the hub's booking service for the one-stop portal: it calls
// each funeral home's booking API (docs/api/booking.yaml) through the
// funeral connector's client — signed, with a deadline, a circuit breaker
// and a rate limit per home — and turns the answers into problem answers
// for the portal.
type Booking struct {
	reg     *Registry
	secret  func(ctx context.Context, keyID string) ([]byte, error)
	baseURL func(partnerID string) string
	timeout time.Duration
	events  connectors.Events
	clock   clock.Clock
	mu      sync.Mutex
	clients map[string]*funeralhome.Client
}

// BookingOptions configure the booking service.
type BookingOptions struct {
	// Secret returns the secret of the key the hub signs a home's calls with
	// (the registry's booking_key_id).
	Secret func(ctx context.Context, keyID string) ([]byte, error)
	// BaseURL overrides the registry's booking_url (demo simulators listen
	// on ports known only at start); nil uses the registry.
	BaseURL func(partnerID string) string
	// Timeout of every call; 5 s (the spec's promise) when zero.
	Timeout time.Duration
	// Events receives one event per call; nil drops them.
	Events connectors.Events
	// Clock tells the time; nil is the wall clock.
	Clock clock.Clock
}

// NewBooking returns the booking service over the registry's funeral homes.
func NewBooking(reg *Registry, o BookingOptions) (*Booking, error) {
	if reg == nil || o.Secret == nil {
		return nil, errors.New("funeral booking: registry and secret are required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	b := &Booking{reg: reg, secret: o.Secret, baseURL: o.BaseURL, timeout: o.Timeout, events: o.Events, clock: o.Clock, clients: map[string]*funeralhome.Client{}}
	if b.baseURL == nil {
		b.baseURL = func(id string) string {
			p, _ := reg.Partner(id)
			return p.BookingURL
		}
	}
	return b, nil
}

// ErrNoBooking is returned for a partner without a booking API.
var ErrNoBooking = errors.New("funeral booking: partner has no booking API")

func (b *Booking) client(ctx context.Context, partnerID string) (*funeralhome.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.clients[partnerID]; ok {
		return c, nil
	}
	p, ok := b.reg.Partner(partnerID)
	if !ok || p.Role != RoleFuneralHome || p.Disabled || p.BookingKeyID == "" || b.baseURL(partnerID) == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoBooking, partnerID)
	}
	secret, err := b.secret(ctx, p.BookingKeyID)
	if err != nil {
		return nil, fmt.Errorf("funeral booking %s: key %s: %w", partnerID, p.BookingKeyID, err)
	}
	cfg := funeralhome.DefaultConfig()
	cfg.Partner, cfg.BaseURL, cfg.KeyID, cfg.Timeout = partnerID, b.baseURL(partnerID), p.BookingKeyID, b.timeout
	c, err := funeralhome.NewClient(cfg, secret)
	if err != nil {
		return nil, err
	}
	b.clients[partnerID] = c
	return c, nil
}

// Availability asks a home for free slots.
func (b *Booking) Availability(ctx context.Context, partnerID, resourceType, date string) (funeralhome.Availability, error) {
	c, err := b.client(ctx, partnerID)
	if err != nil {
		return funeralhome.Availability{}, err
	}
	start := b.clock.Now()
	av, err := c.Availability(ctx, resourceType, date)
	b.emit(partnerID, "availability", "", start, err)
	return av, err
}

// Reserve books a slot at a home; idemKey makes the portal's retries safe.
func (b *Booking) Reserve(ctx context.Context, partnerID, idemKey string, req funeralhome.ReservationRequest) (funeralhome.Reservation, error) {
	c, err := b.client(ctx, partnerID)
	if err != nil {
		return funeralhome.Reservation{}, err
	}
	start := b.clock.Now()
	rv, err := c.Reserve(ctx, idemKey, req)
	b.emit(partnerID, "reserve", req.HubReference, start, err)
	return rv, err
}

// Cancel cancels a reservation at a home.
func (b *Booking) Cancel(ctx context.Context, partnerID, idemKey, reservationID, reason string) (funeralhome.Reservation, error) {
	c, err := b.client(ctx, partnerID)
	if err != nil {
		return funeralhome.Reservation{}, err
	}
	start := b.clock.Now()
	rv, err := c.Cancel(ctx, idemKey, reservationID, reason)
	b.emit(partnerID, "cancel", reservationID, start, err)
	return rv, err
}

func (b *Booking) emit(partnerID, op, ref string, start time.Time, err error) {
	if b.events == nil {
		return
	}
	ev := monitor.Event{Time: b.clock.Now(), Partner: partnerID, Flow: "funeral-booking", Direction: monitor.Outbound, Channel: "http",
		Type: monitor.Sent, Status: monitor.OK, PartnerRef: ref, Duration: b.clock.Now().Sub(start), Component: "funeral",
		Attrs: map[string]string{"op": op}}
	var re *funeralhome.RemoteError
	switch {
	case errors.As(err, &re):
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode = monitor.Rejected, monitor.Warning, "partner", re.Code
	case err != nil:
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorMessage = monitor.Failed, monitor.Error, "transport", err.Error()
	}
	b.events.Emit(ev)
}

// bookingProblem turns a booking error into the portal's answer.
func bookingProblem(err error) problem.Problem {
	var re *funeralhome.RemoteError
	switch {
	case errors.Is(err, ErrNoBooking):
		return problem.NotFound(err.Error())
	case errors.As(err, &re) && re.Status >= 400 && re.Status < 500:
		return problem.Problem{Status: re.Status, Code: orCode(re.Code), Title: "Refused by the funeral home", Detail: re.Detail}
	}
	p := problem.Problem{Status: http.StatusBadGateway, Code: "upstream_unavailable", Title: "Funeral home unavailable",
		Detail: "the funeral home's booking API did not answer in time or failed; retry with the same Idempotency-Key"}
	p.Internal = err
	return p
}

func orCode(c string) string {
	if c == "" {
		return "upstream_refused"
	}
	return c
}

var bookingIdemRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,64}$`)

// BookingHandler serves the portal's booking calls (mount behind the hub's
// internal authentication, e.g. at /internal/funeral/):
//
//	GET  {prefix}/v1/homes/{partner}/availability?resource_type=hall&date=YYYY-MM-DD
//	POST {prefix}/v1/homes/{partner}/reservations               (Idempotency-Key required)
//	POST {prefix}/v1/homes/{partner}/reservations/{id}/cancel   (Idempotency-Key required)
//
// Bodies are those of docs/api/booking.yaml; the home's refusals are passed
// on with their status and code, its outages become 502 upstream_unavailable.
func (b *Booking) Handler(prefix string) http.Handler {
	mux := http.NewServeMux()
	writeErr := func(w http.ResponseWriter, r *http.Request, err error) { problem.Write(w, r, bookingProblem(err)) }
	ok := func(w http.ResponseWriter, status int, v any) {
		body, _ := json.Marshal(v)
		writeJSON(w, status, "", body)
	}
	idem := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		k := r.Header.Get("Idempotency-Key")
		if !bookingIdemRE.MatchString(k) {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "Idempotency-Key (header)", Reason: "required: 8 to 64 characters of [A-Za-z0-9._:-]"}))
			return "", false
		}
		return k, true
	}
	mux.HandleFunc("GET "+prefix+"/v1/homes/{partner}/availability", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var fes []problem.FieldError
		if t := q.Get("resource_type"); t != "hall" && t != "vehicle" {
			fes = append(fes, problem.FieldError{Field: "resource_type (query)", Reason: "want hall or vehicle"})
		}
		if _, err := time.Parse(time.DateOnly, q.Get("date")); err != nil {
			fes = append(fes, problem.FieldError{Field: "date (query)", Reason: "want YYYY-MM-DD"})
		}
		if len(fes) > 0 {
			problem.Write(w, r, problem.ValidationFailed(fes...))
			return
		}
		av, err := b.Availability(r.Context(), r.PathValue("partner"), q.Get("resource_type"), q.Get("date"))
		if err != nil {
			writeErr(w, r, err)
			return
		}
		ok(w, http.StatusOK, av)
	})
	mux.HandleFunc("POST "+prefix+"/v1/homes/{partner}/reservations", func(w http.ResponseWriter, r *http.Request) {
		key, good := idem(w, r)
		if !good {
			return
		}
		var req funeralhome.ReservationRequest
		if p := problem.DecodeJSON(r, &req, 64<<10); p != nil {
			problem.Write(w, r, *p)
			return
		}
		rv, err := b.Reserve(r.Context(), r.PathValue("partner"), key, req)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		ok(w, http.StatusCreated, rv)
	})
	mux.HandleFunc("POST "+prefix+"/v1/homes/{partner}/reservations/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		key, good := idem(w, r)
		if !good {
			return
		}
		var req struct {
			Reason string `json:"reason"`
		}
		if p := problem.DecodeJSON(r, &req, 16<<10); p != nil {
			problem.Write(w, r, *p)
			return
		}
		rv, err := b.Cancel(r.Context(), r.PathValue("partner"), key, r.PathValue("id"), req.Reason)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		ok(w, http.StatusOK, rv)
	})
	return mux
}
