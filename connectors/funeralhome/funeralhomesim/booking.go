package funeralhomesim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/sign"
)

// Faults make the simulator break the booking contract on purpose, so the
// conformance kit can be shown to catch each breach.
type Faults struct {
	// NoIdempotency books again on a repeated Idempotency-Key.
	NoIdempotency bool
	// PlainErrors answers errors as text/plain instead of problem+json.
	PlainErrors bool
	// AcceptBadInput skips validation of reservation requests.
	AcceptBadInput bool
	// SkipSignature accepts unsigned or wrongly signed calls.
	SkipSignature bool
	// Delay holds every answer this long (the hub times out after 5 s).
	Delay time.Duration
	// DoubleBook lets two reservations take one slot.
	DoubleBook bool
}

// Resource is a hall or vehicle of the simulated home.
type Resource struct {
	ID, Type, Name, Category string
	PriceFen                 int64
}

// Reservation is a booking held by the simulated home.
type Reservation struct {
	ReservationID string `json:"reservation_id"`
	HubReference  string `json:"hub_reference"`
	ResourceType  string `json:"resource_type"`
	ResourceID    string `json:"resource_id"`
	StartAt       string `json:"start_at"`
	EndAt         string `json:"end_at"`
	Status        string `json:"status"`
	PriceFen      int64  `json:"price_fen"`
}

// Booking is the simulated home's implementation of docs/api/booking.yaml.
type Booking struct {
	faults    Faults
	verifier  *sign.Verifier
	resources []Resource
	mu        sync.Mutex
	seq       int
	byID      map[string]*Reservation
	idem      map[string]idemEntry
	// OnChange is called (outside the lock) after a reservation changes, so
	// the pusher can report the new status to the hub.
	OnChange func(r Reservation)
}

type idemEntry struct {
	hash   string
	status int
	body   []byte
}

// Slots of a day: 08:00–09:30, 10:00–11:30, 13:00–14:30, 15:00–16:30.
var dayStarts = []int{8 * 60, 10 * 60, 13 * 60, 15 * 60}

const slotMinutes = 90

// NewBooking returns the booking API of a home with the given resources.
// secret verifies the hub's signatures (keyID → secret).
func NewBooking(resources []Resource, secret func(ctx context.Context, keyID string) ([]byte, error), faults Faults) *Booking {
	return &Booking{
		faults: faults, resources: resources, byID: map[string]*Reservation{}, idem: map[string]idemEntry{},
		verifier: &sign.Verifier{Secret: secret, Window: 5 * time.Minute, MaxBody: 64 << 10},
	}
}

func (b *Booking) problem(w http.ResponseWriter, status int, code, detail string, fields ...[2]string) {
	if b.faults.PlainErrors {
		http.Error(w, detail, status)
		return
	}
	type fe struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	}
	p := struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail,omitempty"`
		Errors []fe   `json:"errors,omitempty"`
	}{Type: "https://mzhub.mca.sh.gov.cn/problems/" + code, Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
	for _, f := range fields {
		p.Errors = append(p.Errors, fe{f[0], f[1]})
	}
	body, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) []byte {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return body
}

// ServeHTTP serves /booking/v1/...
func (b *Booking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.faults.Delay > 0 {
		select {
		case <-time.After(b.faults.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if !b.faults.SkipSignature {
		if _, err := b.verifier.Verify(r); err != nil {
			b.problem(w, http.StatusUnauthorized, "signature_invalid", "the request signature does not verify")
			return
		}
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/booking/v1/availability" && r.Method == http.MethodGet:
		b.availability(w, r)
	case path == "/booking/v1/reservations" && r.Method == http.MethodPost:
		b.create(w, r)
	case strings.HasPrefix(path, "/booking/v1/reservations/") && strings.HasSuffix(path, "/cancel") && r.Method == http.MethodPost:
		b.cancel(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/booking/v1/reservations/"), "/cancel"))
	case strings.HasPrefix(path, "/booking/v1/reservations/") && r.Method == http.MethodGet:
		b.get(w, strings.TrimPrefix(path, "/booking/v1/reservations/"))
	default:
		b.problem(w, http.StatusNotFound, "not_found", "no such operation")
	}
}

func (b *Booking) availability(w http.ResponseWriter, r *http.Request) {
	typ, date := r.URL.Query().Get("resource_type"), r.URL.Query().Get("date")
	var bad [][2]string
	if typ != "hall" && typ != "vehicle" {
		bad = append(bad, [2]string{"resource_type", "want hall or vehicle"})
	}
	day, err := time.ParseInLocation(time.DateOnly, date, clock.Shanghai)
	if err != nil {
		bad = append(bad, [2]string{"date", "want YYYY-MM-DD"})
	}
	if len(bad) > 0 && !b.faults.AcceptBadInput {
		b.problem(w, http.StatusUnprocessableEntity, "validation_failed", "invalid query", bad...)
		return
	}
	type slot struct {
		StartAt string `json:"start_at"`
		EndAt   string `json:"end_at"`
	}
	type res struct {
		ResourceID string `json:"resource_id"`
		Name       string `json:"name"`
		Category   string `json:"category,omitempty"`
		PriceFen   int64  `json:"price_fen"`
		Slots      []slot `json:"slots"`
	}
	out := struct {
		Date         string `json:"date"`
		ResourceType string `json:"resource_type"`
		Resources    []res  `json:"resources"`
	}{Date: date, ResourceType: typ, Resources: []res{}}
	b.mu.Lock()
	for _, rs := range b.resources {
		if rs.Type != typ {
			continue
		}
		item := res{ResourceID: rs.ID, Name: rs.Name, Category: rs.Category, PriceFen: rs.PriceFen, Slots: []slot{}}
		for _, m := range dayStarts {
			start := day.Add(time.Duration(m) * time.Minute)
			end := start.Add(slotMinutes * time.Minute)
			if b.takenLocked(rs.ID, start.Format(time.RFC3339), "") {
				continue
			}
			item.Slots = append(item.Slots, slot{start.Format(time.RFC3339), end.Format(time.RFC3339)})
		}
		out.Resources = append(out.Resources, item)
	}
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (b *Booking) takenLocked(resourceID, startAt, except string) bool {
	for _, rv := range b.byID {
		if rv.ResourceID == resourceID && rv.Status == "confirmed" && rv.ReservationID != except {
			if sameInstant(rv.StartAt, startAt) {
				return true
			}
		}
	}
	return false
}

func sameInstant(a, b string) bool {
	ta, e1 := time.Parse(time.RFC3339, a)
	tb, e2 := time.Parse(time.RFC3339, b)
	return e1 == nil && e2 == nil && ta.Equal(tb)
}

var (
	idemRE  = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,64}$`)
	phoneRE = regexp.MustCompile(`^(1\d{10}|0\d{2,3}-?\d{7,8})$`)
	zoneRE  = regexp.MustCompile(`(Z|[+-]\d{2}:\d{2})$`)
)

type reservationRequest struct {
	HubReference string `json:"hub_reference"`
	ResourceType string `json:"resource_type"`
	ResourceID   string `json:"resource_id"`
	StartAt      string `json:"start_at"`
	EndAt        string `json:"end_at"`
	DeceasedName string `json:"deceased_name"`
	Contact      struct {
		Name     string `json:"name"`
		Relation string `json:"relation,omitempty"`
		Phone    string `json:"phone"`
	} `json:"contact"`
	Remarks string `json:"remarks,omitempty"`
}

func (b *Booking) readIdem(w http.ResponseWriter, r *http.Request) (string, []byte, bool) {
	key := r.Header.Get("Idempotency-Key")
	if !idemRE.MatchString(key) && !b.faults.AcceptBadInput {
		b.problem(w, http.StatusUnprocessableEntity, "validation_failed", "Idempotency-Key is required", [2]string{"Idempotency-Key", "want 8 to 64 characters of [A-Za-z0-9._:-]"})
		return "", nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		b.problem(w, http.StatusBadRequest, "bad_json", "the body could not be read")
		return "", nil, false
	}
	return key, body, true
}

// replay answers a repeated key; it reports whether it answered.
func (b *Booking) replay(w http.ResponseWriter, key, hash string) bool {
	if b.faults.NoIdempotency || key == "" {
		return false
	}
	b.mu.Lock()
	e, ok := b.idem[key]
	b.mu.Unlock()
	if !ok {
		return false
	}
	if e.hash != hash {
		b.problem(w, http.StatusUnprocessableEntity, "idempotency_key_reused", "the key was used for another request")
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
	return true
}

func (b *Booking) create(w http.ResponseWriter, r *http.Request) {
	key, body, ok := b.readIdem(w, r)
	if !ok {
		return
	}
	hash := "create:" + sign.ContentSM3(body)
	if b.replay(w, key, hash) {
		return
	}
	var req reservationRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !b.faults.AcceptBadInput {
		b.problem(w, http.StatusBadRequest, "bad_json", "the body is not a reservation request")
		return
	}
	var res *Resource
	for i := range b.resources {
		if b.resources[i].ID == req.ResourceID && b.resources[i].Type == req.ResourceType {
			res = &b.resources[i]
		}
	}
	if !b.faults.AcceptBadInput {
		var bad [][2]string
		if req.HubReference == "" || len(req.HubReference) > 64 {
			bad = append(bad, [2]string{"/hub_reference", "required, at most 64 characters"})
		}
		if req.ResourceType != "hall" && req.ResourceType != "vehicle" {
			bad = append(bad, [2]string{"/resource_type", "want hall or vehicle"})
		}
		st, e1 := time.Parse(time.RFC3339, req.StartAt)
		en, e2 := time.Parse(time.RFC3339, req.EndAt)
		if e1 != nil || !zoneRE.MatchString(req.StartAt) {
			bad = append(bad, [2]string{"/start_at", "want an RFC 3339 time with an offset"})
		}
		if e2 != nil || !zoneRE.MatchString(req.EndAt) {
			bad = append(bad, [2]string{"/end_at", "want an RFC 3339 time with an offset"})
		}
		if e1 == nil && e2 == nil && !en.After(st) {
			bad = append(bad, [2]string{"/end_at", "must be after start_at"})
		}
		if req.DeceasedName == "" {
			bad = append(bad, [2]string{"/deceased_name", "required"})
		}
		if req.Contact.Name == "" {
			bad = append(bad, [2]string{"/contact/name", "required"})
		}
		if !phoneRE.MatchString(req.Contact.Phone) {
			bad = append(bad, [2]string{"/contact/phone", "want a mobile or fixed-line number"})
		}
		if len(bad) > 0 {
			b.problem(w, http.StatusUnprocessableEntity, "validation_failed", "invalid reservation request", bad...)
			return
		}
		if res == nil {
			b.problem(w, http.StatusNotFound, "not_found", "no "+req.ResourceType+" "+req.ResourceID)
			return
		}
		if !b.isSlot(req.StartAt, req.EndAt) {
			b.problem(w, http.StatusConflict, "slot_unavailable", "not a bookable slot")
			return
		}
	}
	b.mu.Lock()
	if !b.faults.DoubleBook && b.takenLocked(req.ResourceID, req.StartAt, "") {
		b.mu.Unlock()
		b.problem(w, http.StatusConflict, "slot_unavailable", req.ResourceID+" is already booked at "+req.StartAt)
		return
	}
	b.seq++
	rv := &Reservation{ReservationID: "R-" + strconv.Itoa(100000+b.seq), HubReference: req.HubReference, ResourceType: req.ResourceType,
		ResourceID: req.ResourceID, StartAt: req.StartAt, EndAt: req.EndAt, Status: "confirmed"}
	if res != nil {
		rv.PriceFen = res.PriceFen
	}
	b.byID[rv.ReservationID] = rv
	out, _ := json.Marshal(rv)
	if key != "" {
		b.idem[key] = idemEntry{hash: hash, status: http.StatusCreated, body: out}
	}
	cp := *rv
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(out)
	if b.OnChange != nil {
		b.OnChange(cp)
	}
}

func (b *Booking) isSlot(start, end string) bool {
	st, e1 := time.Parse(time.RFC3339, start)
	en, e2 := time.Parse(time.RFC3339, end)
	if e1 != nil || e2 != nil || en.Sub(st) != slotMinutes*time.Minute {
		return false
	}
	local := st.In(clock.Shanghai)
	m := local.Hour()*60 + local.Minute()
	i := sort.SearchInts(dayStarts, m)
	return i < len(dayStarts) && dayStarts[i] == m && local.Second() == 0
}

func (b *Booking) get(w http.ResponseWriter, id string) {
	b.mu.Lock()
	rv, ok := b.byID[id]
	var cp Reservation
	if ok {
		cp = *rv
	}
	b.mu.Unlock()
	if !ok {
		b.problem(w, http.StatusNotFound, "not_found", "no reservation "+id)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (b *Booking) cancel(w http.ResponseWriter, r *http.Request, id string) {
	key, body, ok := b.readIdem(w, r)
	if !ok {
		return
	}
	hash := "cancel:" + id + ":" + sign.ContentSM3(body)
	if b.replay(w, key, hash) {
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); (err != nil || len([]rune(req.Reason)) > 200) && !b.faults.AcceptBadInput {
		b.problem(w, http.StatusUnprocessableEntity, "validation_failed", "invalid cancel request", [2]string{"/reason", "at most 200 characters; no other fields"})
		return
	}
	b.mu.Lock()
	rv, ok := b.byID[id]
	if !ok {
		b.mu.Unlock()
		b.problem(w, http.StatusNotFound, "not_found", "no reservation "+id)
		return
	}
	changed := rv.Status != "cancelled"
	rv.Status = "cancelled"
	out, _ := json.Marshal(rv)
	if key != "" {
		b.idem[key] = idemEntry{hash: hash, status: http.StatusOK, body: out}
	}
	cp := *rv
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	if changed && b.OnChange != nil {
		b.OnChange(cp)
	}
}

// Reservations returns the reservations held, sorted by id.
func (b *Booking) Reservations() []Reservation {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Reservation, 0, len(b.byID))
	for _, rv := range b.byID {
		out = append(out, *rv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReservationID < out[j].ReservationID })
	return out
}

// String names the simulator in logs.
func (b *Booking) String() string { return fmt.Sprintf("booking sim (%d resources)", len(b.resources)) }
