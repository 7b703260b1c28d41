package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/sign"
)

// FuneralHomeOptions configure a run against a funeral home's booking API.
type FuneralHomeOptions struct {
	// Target is the base URL of the implementation (…/booking/v1 is appended).
	Target string
	// KeyID and Secret are the credentials the hub signs with.
	KeyID  string
	Secret []byte
	// Date is the day to book (YYYY-MM-DD, Asia/Shanghai); default: 7 days from Now.
	Date string
	// Timeout is the deadline of every call (the spec's 5 s by default).
	Timeout time.Duration
	// Now tells the time; time.Now when nil.
	Now func() time.Time
	// Transport sends requests; http.DefaultTransport when nil.
	Transport http.RoundTripper
}

type answer struct {
	status int
	ctype  string
	body   []byte
	took   time.Duration
	err    error
}

func (a answer) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(a.body, &p)
	return p.Code
}

func (a answer) String() string {
	if a.err != nil {
		return "error: " + a.err.Error()
	}
	b := a.body
	if len(b) > 300 {
		b = append(b[:300:300], "…"...)
	}
	return fmt.Sprintf("%d %s %s", a.status, a.ctype, b)
}

type fhRun struct {
	opts   FuneralHomeOptions
	spec   *apispec.Spec
	client *http.Client
	rep    *Report
}

// signing modes of a call.
const (
	signed = iota
	unsigned
	wrongSecret
)

func (r *fhRun) call(ctx context.Context, mode int, method, path, idemKey string, body []byte) answer {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(r.opts.Target, "/")+path, rd)
	if err != nil {
		return answer{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	switch mode {
	case signed:
		err = sign.SignAt(req, r.opts.KeyID, r.opts.Secret, r.opts.Now(), sign.NewNonce())
	case wrongSecret:
		err = sign.SignAt(req, r.opts.KeyID, append([]byte("not-"), r.opts.Secret...), r.opts.Now(), sign.NewNonce())
	}
	if err != nil {
		return answer{err: err}
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b, took: time.Since(start), err: err}
}

// conforms checks an answer against the booking spec.
func (r *fhRun) conforms(method, path string, a answer) error {
	if a.err != nil {
		if errors.Is(a.err, context.DeadlineExceeded) || strings.Contains(a.err.Error(), "Client.Timeout") {
			return &callError{fmt.Errorf("no answer within %s", r.opts.Timeout)}
		}
		return &callError{a.err}
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	op, _, ok := r.spec.Find(method, path)
	if !ok {
		return fmt.Errorf("%s %s is not in the booking spec", method, path)
	}
	if breaches := r.spec.CheckResponse(op, a.status, a.ctype, a.body); len(breaches) > 0 {
		return fmt.Errorf("answer breaks the spec: %s (%s)", strings.Join(breaches, "; "), a)
	}
	return nil
}

// expectProblem checks a 4xx problem answer with one of the statuses and, when given, the code.
func (r *fhRun) expectProblem(method, path string, a answer, statuses []int, code string) error {
	if err := r.conforms(method, path, a); err != nil {
		return err
	}
	ok := false
	for _, s := range statuses {
		ok = ok || a.status == s
	}
	if !ok {
		return fmt.Errorf("want status %v, got %s", statuses, a)
	}
	if mt, _, _ := mime.ParseMediaType(a.ctype); mt != "application/problem+json" {
		return fmt.Errorf("want application/problem+json, got %q", a.ctype)
	}
	if code != "" && a.code() != code {
		return fmt.Errorf("want code %q, got %q (%s)", code, a.code(), a)
	}
	return nil
}

func (r *fhRun) check(name, op string, fn func() error) {
	start := time.Now()
	err := fn()
	res := Result{Name: name, Operation: op, Passed: err == nil, Duration: time.Since(start)}
	if err != nil {
		res.Message, res.Fix = err.Error(), r.fixFor(name, err)
	}
	r.rep.Results = append(r.rep.Results, res)
}

// unexpected is the failure of a signed call that did not get the wanted
// answer: a 401 means the signature check itself is wrong.
func unexpected(want string, a answer) error {
	if a.status == http.StatusUnauthorized {
		return &refusedSigned{a}
	}
	return fmt.Errorf("want %s, got %s", want, a)
}

// callError is a call that got no HTTP answer at all.
type callError struct{ err error }

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// refusedSigned is a correctly signed call answered 401.
type refusedSigned struct{ a answer }

func (e *refusedSigned) Error() string {
	return fmt.Sprintf("a correctly signed call was refused: %s", e.a)
}

// fhFixes says, per check (longest prefix of its name wins), what to change.
var fhFixes = []struct{ prefix, fix string }{
	{"availability/hall", "answer GET /booking/v1/availability?resource_type=hall&date=D with every hall and its free slots on D (getAvailability)"},
	{"availability/vehicle", "answer GET /booking/v1/availability?resource_type=vehicle&date=D with every vehicle and its free slots on D (getAvailability)"},
	{"availability/", "validate resource_type and date (YYYY-MM-DD): answer 400 or 422 problem+json naming the parameter"},
	{"signature/", "verify X-MZ-Signature on every call as docs/signing.md says, with the booking key id; answer 401 problem+json when it is missing or wrong"},
	{"reserve/create", "book the slot and answer 201 with the reservation: status confirmed, hub_reference and resource_id as sent (createReservation)"},
	{"reserve/idempotent-replay", "keep each Idempotency-Key with its answer: the same key and body again gets the first reservation, never a second booking"},
	{"reserve/slot-now-taken", "stop listing a slot as free in availability once it is booked"},
	{"reserve/key-reused-other-body", "answer 422 problem+json with code idempotency_key_reused when a key comes back with another body"},
	{"reserve/double-booking-refused", "answer 409 problem+json with code slot_unavailable for a slot that is already booked"},
	{"reserve/missing-idempotency-key", "require the Idempotency-Key header on POST: answer 400 or 422 problem+json without it"},
	{"reserve/bad-input/", "validate every field of the ReservationRequest schema: answer 400 or 422 problem+json naming the field"},
	{"reserve/unsigned-refused", "verify the signature on POST too: answer 401 problem+json to an unsigned call"},
	{"get/reservation", "answer GET /booking/v1/reservations/{id} with the stored reservation (getReservation)"},
	{"get/unknown", "answer 404 problem+json with code not_found for an unknown reservation id"},
	{"cancel/unknown", "answer 404 problem+json with code not_found for an unknown reservation id"},
	{"cancel/slot-free-again", "list a cancelled reservation's slot as free again"},
	{"cancel/", "cancel and answer 200 with status cancelled, also when the reservation is already cancelled (cancelReservation)"},
}

// fixFor says what to change for a failed check: the cause's kind first
// (nothing answers, a good signature refused, too slow, an answer outside
// the spec), else the check's own fix.
func (r *fhRun) fixFor(name string, err error) string {
	var ce *callError
	var rs *refusedSigned
	switch {
	case errors.As(err, &ce) && strings.Contains(ce.Error(), "no answer within"):
		return fmt.Sprintf("answer every call within %s (the spec's deadline)", r.opts.Timeout)
	case errors.As(err, &ce):
		return fmt.Sprintf("start the booking API at %s and make it reachable from here, or pass its address as --target", r.opts.Target)
	case errors.As(err, &rs):
		return fmt.Sprintf("verify the signature over the path as requested, /booking/v1/… and the query included, with key id %s and its secret (docs/signing.md)", r.opts.KeyID)
	case strings.Contains(err.Error(), "answer breaks the spec"):
		return "answer exactly as docs/api/booking.yaml says for this operation and status (status code, content type, fields)"
	}
	best := ""
	for _, f := range fhFixes {
		if strings.HasPrefix(name, f.prefix) && len(f.prefix) > len(best) {
			best = f.prefix
		}
	}
	for _, f := range fhFixes {
		if f.prefix == best {
			return f.fix
		}
	}
	return "see docs/api/booking.yaml for what this operation must answer"
}

// RunFuneralHome runs the contract tests of docs/api/booking.yaml against an
// implementation: every operation with good and bad inputs, signatures,
// idempotency, error shapes and the deadline. It books and cancels real
// reservations on opts.Date, so run it against the home's test endpoint.
func RunFuneralHome(ctx context.Context, opts FuneralHomeOptions) (Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Date == "" {
		opts.Date = opts.Now().In(clock.Shanghai).AddDate(0, 0, 7).Format(time.DateOnly)
	}
	spec, err := apispec.Booking()
	if err != nil {
		return Report{}, err
	}
	tr := opts.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	rep := &Report{Suite: "funeral-home", Target: opts.Target, Started: opts.Now()}
	r := &fhRun{opts: opts, spec: spec, client: &http.Client{Transport: tr}, rep: rep}
	run := fmt.Sprintf("%x", opts.Now().UnixNano())
	avPath := func(typ, date string) string {
		return "/booking/v1/availability?" + url.Values{"resource_type": {typ}, "date": {date}}.Encode()
	}

	// Availability.
	var hall struct {
		id          string
		start, end  string
		haveAnySlot bool
	}
	for _, typ := range []string{"hall", "vehicle"} {
		r.check("availability/"+typ, "getAvailability", func() error {
			a := r.call(ctx, signed, "GET", avPath(typ, opts.Date), "", nil)
			if err := r.conforms("GET", avPath(typ, opts.Date), a); err != nil {
				return err
			}
			if a.status != 200 {
				return unexpected("200", a)
			}
			var av struct {
				Date         string `json:"date"`
				ResourceType string `json:"resource_type"`
				availability
			}
			_ = json.Unmarshal(a.body, &av)
			if av.Date != opts.Date || av.ResourceType != typ {
				return fmt.Errorf("answer is for %s %s, asked %s %s", av.ResourceType, av.Date, typ, opts.Date)
			}
			if len(av.Resources) == 0 {
				return fmt.Errorf("no %s resources listed", typ)
			}
			if typ == "hall" {
				for _, res := range av.Resources {
					if len(res.Slots) > 0 {
						hall.id, hall.start, hall.end, hall.haveAnySlot = res.ResourceID, res.Slots[0].StartAt, res.Slots[0].EndAt, true
						break
					}
				}
				if !hall.haveAnySlot {
					return fmt.Errorf("no free hall slot on %s to run the booking checks", opts.Date)
				}
			}
			return nil
		})
	}
	for _, bad := range []struct{ name, typ, date string }{{"unknown-type", "boat", opts.Date}, {"bad-date", "hall", "28/11/2026"}, {"missing-date", "hall", ""}} {
		r.check("availability/"+bad.name, "getAvailability", func() error {
			p := "/booking/v1/availability?resource_type=" + url.QueryEscape(bad.typ)
			if bad.date != "" {
				p += "&date=" + url.QueryEscape(bad.date)
			}
			return r.expectProblem("GET", p, r.call(ctx, signed, "GET", p, "", nil), []int{400, 422}, "")
		})
	}
	r.check("signature/unsigned-refused", "getAvailability", func() error {
		p := avPath("hall", opts.Date)
		return r.expectProblem("GET", p, r.call(ctx, unsigned, "GET", p, "", nil), []int{401}, "")
	})
	r.check("signature/wrong-secret-refused", "getAvailability", func() error {
		p := avPath("hall", opts.Date)
		return r.expectProblem("GET", p, r.call(ctx, wrongSecret, "GET", p, "", nil), []int{401}, "")
	})
	if !hall.haveAnySlot {
		return *rep, nil
	}

	// Reservations.
	const resPath = "/booking/v1/reservations"
	good := map[string]any{"hub_reference": "CONF-" + run, "resource_type": "hall", "resource_id": hall.id, "start_at": hall.start, "end_at": hall.end,
		"deceased_name": "测试某某", "contact": map[string]any{"name": "测试联系人", "relation": "子", "phone": "13800000000"}, "remarks": "conformance run"}
	goodBody, _ := json.Marshal(good)
	key1 := "conf-" + run + "-1"
	var reservationID string
	r.check("reserve/create", "createReservation", func() error {
		a := r.call(ctx, signed, "POST", resPath, key1, goodBody)
		if err := r.conforms("POST", resPath, a); err != nil {
			return err
		}
		if a.status != 201 {
			return unexpected("201", a)
		}
		var rv struct{ ReservationID, HubReference, ResourceID, Status string }
		rv.ReservationID, rv.HubReference, rv.ResourceID, rv.Status = str(a.body, "reservation_id"), str(a.body, "hub_reference"), str(a.body, "resource_id"), str(a.body, "status")
		if rv.Status != "confirmed" || rv.HubReference != good["hub_reference"] || rv.ResourceID != hall.id {
			return fmt.Errorf("reservation does not echo the request: %s", a)
		}
		reservationID = rv.ReservationID
		return nil
	})
	r.check("reserve/idempotent-replay", "createReservation", func() error {
		a := r.call(ctx, signed, "POST", resPath, key1, goodBody)
		if err := r.conforms("POST", resPath, a); err != nil {
			return err
		}
		if a.status != 201 && a.status != 200 {
			return fmt.Errorf("a retry with the same Idempotency-Key must answer as before, got %s", a)
		}
		if got := str(a.body, "reservation_id"); got != reservationID {
			return fmt.Errorf("the retry made reservation %q besides %q: booked twice", got, reservationID)
		}
		return nil
	})
	r.check("reserve/slot-now-taken", "getAvailability", func() error {
		p := avPath("hall", opts.Date)
		a := r.call(ctx, signed, "GET", p, "", nil)
		if err := r.conforms("GET", p, a); err != nil {
			return err
		}
		if slotListed(a.body, hall.id, hall.start) {
			return fmt.Errorf("%s at %s is still listed as free after it was booked", hall.id, hall.start)
		}
		return nil
	})
	r.check("reserve/key-reused-other-body", "createReservation", func() error {
		other := cloneMap(good)
		other["remarks"] = "another request"
		b, _ := json.Marshal(other)
		return r.expectProblem("POST", resPath, r.call(ctx, signed, "POST", resPath, key1, b), []int{422, 409}, "idempotency_key_reused")
	})
	r.check("reserve/double-booking-refused", "createReservation", func() error {
		other := cloneMap(good)
		other["hub_reference"] = "CONF-" + run + "-dup"
		b, _ := json.Marshal(other)
		return r.expectProblem("POST", resPath, r.call(ctx, signed, "POST", resPath, "conf-"+run+"-2", b), []int{409}, "slot_unavailable")
	})
	r.check("reserve/missing-idempotency-key", "createReservation", func() error {
		return r.expectProblem("POST", resPath, r.call(ctx, signed, "POST", resPath, "", goodBody), []int{400, 422}, "")
	})
	badInputs := []struct {
		name string
		mut  func(m map[string]any)
		raw  string
		// also lists statuses accepted besides 400 and 422.
		also []int
	}{
		{name: "end-before-start", mut: func(m map[string]any) { m["start_at"], m["end_at"] = hall.end, hall.start }},
		{name: "time-without-offset", mut: func(m map[string]any) { m["start_at"] = strings.TrimSuffix(hall.start, "+08:00") }},
		{name: "bad-phone", mut: func(m map[string]any) { m["contact"] = map[string]any{"name": "x", "phone": "12"} }},
		{name: "unknown-type", mut: func(m map[string]any) { m["resource_type"] = "boat" }, also: []int{404}},
		{name: "missing-hub-reference", mut: func(m map[string]any) { delete(m, "hub_reference") }},
		{name: "unknown-field", mut: func(m map[string]any) { m["discount_fen"] = 100 }},
		{name: "malformed-json", raw: `{"hub_reference": `},
		{name: "empty-body", raw: ``},
	}
	for i, bad := range badInputs {
		r.check("reserve/bad-input/"+bad.name, "createReservation", func() error {
			var b []byte
			if bad.mut != nil {
				m := cloneMap(good)
				m["hub_reference"] = fmt.Sprintf("CONF-%s-bad%d", run, i)
				bad.mut(m)
				b, _ = json.Marshal(m)
			} else {
				b = []byte(bad.raw)
			}
			return r.expectProblem("POST", resPath, r.call(ctx, signed, "POST", resPath, fmt.Sprintf("conf-%s-bad%d", run, i), b), append([]int{400, 422}, bad.also...), "")
		})
	}
	r.check("reserve/unsigned-refused", "createReservation", func() error {
		return r.expectProblem("POST", resPath, r.call(ctx, unsigned, "POST", resPath, "conf-"+run+"-u", goodBody), []int{401}, "")
	})
	getPath := resPath + "/" + url.PathEscape(reservationID)
	r.check("get/reservation", "getReservation", func() error {
		a := r.call(ctx, signed, "GET", getPath, "", nil)
		if err := r.conforms("GET", getPath, a); err != nil {
			return err
		}
		if a.status != 200 || str(a.body, "reservation_id") != reservationID || str(a.body, "status") != "confirmed" {
			return unexpected("200 with the confirmed reservation", a)
		}
		return nil
	})
	r.check("get/unknown", "getReservation", func() error {
		p := resPath + "/CONF-NO-SUCH-" + run
		return r.expectProblem("GET", p, r.call(ctx, signed, "GET", p, "", nil), []int{404}, "not_found")
	})
	cancelPath := getPath + "/cancel"
	for i, name := range []string{"cancel/first", "cancel/again-is-idempotent"} {
		r.check(name, "cancelReservation", func() error {
			a := r.call(ctx, signed, "POST", cancelPath, fmt.Sprintf("conf-%s-c%d", run, i), []byte(`{"reason":"conformance run"}`))
			if err := r.conforms("POST", cancelPath, a); err != nil {
				return err
			}
			if a.status != 200 || str(a.body, "status") != "cancelled" {
				return unexpected("200 with status cancelled", a)
			}
			return nil
		})
	}
	r.check("cancel/unknown", "cancelReservation", func() error {
		p := resPath + "/CONF-NO-SUCH-" + run + "/cancel"
		return r.expectProblem("POST", p, r.call(ctx, signed, "POST", p, "conf-"+run+"-cx", []byte(`{}`)), []int{404}, "not_found")
	})
	r.check("cancel/slot-free-again", "getAvailability", func() error {
		p := avPath("hall", opts.Date)
		a := r.call(ctx, signed, "GET", p, "", nil)
		if err := r.conforms("GET", p, a); err != nil {
			return err
		}
		if !slotListed(a.body, hall.id, hall.start) {
			return fmt.Errorf("%s at %s is not free again after the cancellation", hall.id, hall.start)
		}
		return nil
	})
	return *rep, nil
}

func str(body []byte, field string) string {
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	s, _ := m[field].(string)
	return s
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type availability struct {
	Resources []struct {
		ResourceID string `json:"resource_id"`
		Slots      []struct {
			StartAt string `json:"start_at"`
			EndAt   string `json:"end_at"`
		} `json:"slots"`
	} `json:"resources"`
}

func slotListed(body []byte, resourceID, start string) bool {
	var av availability
	_ = json.Unmarshal(body, &av)
	st, _ := time.Parse(time.RFC3339, start)
	for _, r := range av.Resources {
		if r.ResourceID != resourceID {
			continue
		}
		for _, s := range r.Slots {
			if t, err := time.Parse(time.RFC3339, s.StartAt); err == nil && t.Equal(st) {
				return true
			}
		}
	}
	return false
}
