package funeralhomesim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/sign"
)

// Credentials are a key id and its secret.
type Credentials struct {
	KeyID  string
	Secret []byte
}

// Config describes one simulated funeral home.
type Config struct {
	// Index numbers the home (1..15); it seeds names, plates and prices.
	Index int
	// HubURL is the hub's base URL (pushes go to HubURL + /partner/v1/...);
	// empty disables pushing.
	HubURL string
	// Push signs the home's pushes to the hub.
	Push Credentials
	// Booking verifies the hub's calls to the booking API.
	Booking Credentials
	// Listen is the booking API's address; default 127.0.0.1:0.
	Listen string
	// Interval between rounds of updates after the first full push; 0 pushes once.
	Interval time.Duration
	// Faults break the booking contract on purpose.
	Faults Faults
	// Clock tells the time; nil is the wall clock.
	Clock clock.Clock
	// Logger; nil discards.
	Logger *slog.Logger
}

// Home is a running simulated funeral home: its booking API and its pusher.
type Home struct {
	cfg     Config
	Booking *Booking
	client  *http.Client
	ln      net.Listener
	srv     *http.Server
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	mu      sync.Mutex
	version map[string]int64
	pushed  int
	failed  int
	first   chan struct{} // closed once the first full push returned
}

// Resources returns the halls and vehicles of home index i.
func Resources(i int) []Resource {
	halls := []struct{ name, cat string }{{"长青厅", "large"}, {"松柏厅", "medium"}, {"思源厅", "small"}, {"守灵厅", "vigil"}}
	var out []Resource
	for j, h := range halls {
		out = append(out, Resource{ID: fmt.Sprintf("H-%02d", j+1), Type: "hall", Name: h.name, Category: h.cat, PriceFen: int64(280000 - j*60000 + i*1000)})
	}
	for j := 0; j < 2; j++ {
		out = append(out, Resource{ID: fmt.Sprintf("V-%02d", j+1), Type: "vehicle", Name: fmt.Sprintf("沪A%03d%02d", i, j+1), Category: "hearse", PriceFen: int64(60000 + j*10000)})
	}
	return out
}

// Start starts the booking API and, with a hub URL, pushes the home's data
// and then updates every Interval until ctx is done or Close is called.
func Start(ctx context.Context, cfg Config) (*Home, error) {
	if cfg.Index < 1 {
		cfg.Index = 1
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	bookingKey := cfg.Booking
	h := &Home{cfg: cfg, version: map[string]int64{}, first: make(chan struct{})}
	h.Booking = NewBooking(Resources(cfg.Index), func(_ context.Context, keyID string) ([]byte, error) {
		if keyID != bookingKey.KeyID {
			return nil, sign.ErrUnknownKey
		}
		return bookingKey.Secret, nil
	}, cfg.Faults)
	h.client = &http.Client{Timeout: 10 * time.Second, Transport: &sign.Transport{KeyID: cfg.Push.KeyID, Secret: cfg.Push.Secret}}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("funeral sim %d: listen: %w", cfg.Index, err)
	}
	h.ln = ln
	h.srv = &http.Server{Handler: h.Booking, ReadHeaderTimeout: 5 * time.Second}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = h.srv.Serve(ln)
	}()
	if cfg.HubURL != "" {
		h.Booking.OnChange = func(r Reservation) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			h.pushReservation(ctx, r)
		}
		rctx, cancel := context.WithCancel(ctx)
		h.cancel = cancel
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.run(rctx)
		}()
	} else {
		close(h.first) // nothing to push
	}
	return h, nil
}

// Pushed returns a channel closed once the home's first full push (PushAll
// at start) has returned, whatever its outcome; Stats counts it by then.
// Without a hub URL nothing is pushed and the channel is closed.
func (h *Home) Pushed() <-chan struct{} { return h.first }

// URL is the base URL of the booking API.
func (h *Home) URL() string { return "http://" + h.ln.Addr().String() }

// Stats returns the pushes accepted and refused so far.
func (h *Home) Stats() (pushed, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pushed, h.failed
}

// Close stops pushing and the booking API within ctx's deadline.
func (h *Home) Close(ctx context.Context) error {
	if h.cancel != nil {
		h.cancel()
	}
	err := h.srv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

func (h *Home) run(ctx context.Context) {
	if err := h.PushAll(ctx); err != nil && ctx.Err() == nil {
		h.cfg.Logger.Warn("funeral sim: first push", "home", h.cfg.Index, "err", err)
	}
	close(h.first)
	if h.cfg.Interval <= 0 {
		return
	}
	round := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(h.cfg.Interval):
		}
		round++
		if err := h.Update(ctx, round); err != nil && ctx.Err() == nil {
			h.cfg.Logger.Warn("funeral sim: update", "home", h.cfg.Index, "err", err)
		}
	}
}

// next returns the next version of a record.
func (h *Home) next(path string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.version[path]++
	return h.version[path]
}

// put pushes one record, numbering its version.
func (h *Home) put(ctx context.Context, path string, body map[string]any) error {
	body["version"] = h.next(path)
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(h.cfg.HubURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "sim-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	resp, err := h.client.Do(req)
	if err != nil {
		h.count(false)
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode >= 300 {
		h.count(false)
		return fmt.Errorf("PUT %s: %d: %s", path, resp.StatusCode, msg)
	}
	h.count(true)
	return nil
}

func (h *Home) count(ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.pushed++
	} else {
		h.failed++
	}
}

// PushAll pushes the home's profile, halls, vehicles, supplies, three days
// of schedules and a few deceased records.
func (h *Home) PushAll(ctx context.Context) error {
	i := h.cfg.Index
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(h.put(ctx, "/partner/v1/institution", map[string]any{
		"name": fmt.Sprintf("上海市模拟殡仪馆%02d", i), "type": "funeral_home", "credit_code": fmt.Sprintf("1231000042501%04dX", i),
		"division_code": fmt.Sprintf("3101%02d", []int{1, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 18, 20}[(i-1)%15]),
		"address":       fmt.Sprintf("上海市模拟路 %d 号", i*10), "phone": fmt.Sprintf("021-6400%04d", i), "service_hours": "每日 06:00-17:00",
		"service_guide": map[string]any{"summary": "遗体接运、告别、火化一站式服务", "procedures": []string{"预约", "接运", "告别", "火化", "领取骨灰"},
			"required_documents": []string{"死亡证明", "经办人身份证"}},
	}))
	for _, r := range Resources(i) {
		if r.Type == "hall" {
			add(h.put(ctx, "/partner/v1/halls/"+r.ID, map[string]any{"name": r.Name, "category": r.Category, "capacity": 50 + int(r.PriceFen/2000), "price_fen": r.PriceFen, "status": "available"}))
		} else {
			add(h.put(ctx, "/partner/v1/vehicles/"+r.ID, map[string]any{"plate_number": r.Name, "type": "hearse", "seats": 4, "price_fen": r.PriceFen, "status": "available"}))
		}
	}
	supplies := []struct {
		id, name, cat, unit string
		price               int64
	}{{"S-URN-01", "环保骨灰盒（标准）", "urn", "个", 58000}, {"S-URN-02", "红木骨灰盒", "urn", "个", 268000}, {"S-SHR-01", "寿衣（套）", "shroud", "套", 88000}, {"S-FLW-01", "鲜花布置", "flowers", "场", 120000}, {"S-WRE-01", "花圈", "wreath", "个", 15000}}
	for _, s := range supplies {
		add(h.put(ctx, "/partner/v1/supplies/"+s.id, map[string]any{"name": s.name, "category": s.cat, "unit": s.unit, "price_fen": s.price + int64(i*100), "stock": 100, "status": "on_sale"}))
	}
	now := h.cfg.Clock.Now().In(clock.Shanghai)
	for d := 0; d < 3; d++ {
		day := time.Date(now.Year(), now.Month(), now.Day()+d, 0, 0, 0, 0, clock.Shanghai)
		for _, r := range Resources(i) {
			add(h.pushSchedule(ctx, r, day))
		}
	}
	statuses := []string{"received", "stored", "farewell", "cremated", "ashes_collected"}
	for k := 0; k < 3; k++ {
		add(h.pushDeceased(ctx, k, statuses[k]))
	}
	return errors.Join(errs...)
}

func (h *Home) pushSchedule(ctx context.Context, r Resource, day time.Time) error {
	var slots []any
	for _, m := range dayStarts {
		start := day.Add(time.Duration(m) * time.Minute)
		state := "free"
		for _, rv := range h.Booking.Reservations() {
			if rv.ResourceID == r.ID && rv.Status == "confirmed" && sameInstant(rv.StartAt, start.Format(time.RFC3339)) {
				state = "booked"
			}
		}
		slots = append(slots, map[string]any{"start_at": start.Format(time.RFC3339), "end_at": start.Add(slotMinutes * time.Minute).Format(time.RFC3339), "state": state})
	}
	return h.put(ctx, "/partner/v1/schedules/"+r.ID+"-"+day.Format("20060102"), map[string]any{
		"resource_type": r.Type, "resource_id": r.ID, "date": day.Format(time.DateOnly), "slots": slots})
}

func (h *Home) pushDeceased(ctx context.Context, k int, status string) error {
	now := h.cfg.Clock.Now().In(clock.Shanghai)
	received := now.Add(-time.Duration(k+1) * 26 * time.Hour).Truncate(time.Minute)
	return h.put(ctx, fmt.Sprintf("/partner/v1/deceased/D-%02d-%04d", h.cfg.Index, k+1), map[string]any{
		"name": []string{"张某某", "李某某", "王某某", "赵某某"}[k%4], "gender": []string{"male", "female"}[k%2],
		"id_number": simID(h.cfg.Index, k), "death_date": received.Format(time.DateOnly), "body_status": status,
		"status_at": now.Truncate(time.Second).Format(time.RFC3339), "received_at": received.Format(time.RFC3339),
		"storage_location": fmt.Sprintf("冷藏柜 B-%02d", k+1),
		"contact":          map[string]any{"name": "家属" + strconv.Itoa(k+1), "relation": "子", "phone": fmt.Sprintf("139%04d%04d", h.cfg.Index, k)},
	})
}

func (h *Home) pushReservation(ctx context.Context, r Reservation) {
	err := h.put(ctx, "/partner/v1/reservations/"+r.ReservationID, map[string]any{
		"resource_type": r.ResourceType, "resource_id": r.ResourceID, "start_at": r.StartAt, "end_at": r.EndAt,
		"status": r.Status, "channel": "one_stop_portal", "hub_reference": r.HubReference})
	if err != nil {
		h.cfg.Logger.Warn("funeral sim: push reservation", "home", h.cfg.Index, "err", err)
	}
}

// Update pushes one round of changes: a body moves on, a price changes.
func (h *Home) Update(ctx context.Context, round int) error {
	statuses := []string{"received", "stored", "farewell", "cremated", "ashes_collected"}
	k := round % 3
	return errors.Join(
		h.pushDeceased(ctx, k, statuses[(k+round)%len(statuses)]),
		h.put(ctx, "/partner/v1/supplies/S-FLW-01", map[string]any{"name": "鲜花布置", "category": "flowers", "unit": "场", "price_fen": 120000 + int64(round%5)*1000, "stock": 100, "status": "on_sale"}),
	)
}

// simID makes a valid-looking resident ID number (GB 11643 check digit) for
// synthetic data.
func simID(home, k int) string {
	base := fmt.Sprintf("310101%04d%02d%02d%03d", 1930+(home*7+k)%50, 1+k%12, 1+home%28, (home*10+k)%1000)
	w := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(base[i]-'0') * w[i]
	}
	return base + string("10X98765432"[sum%11])
}

// Pusher pushes burial records for a cemetery or columbarium.
type Pusher struct {
	HubURL string
	Client *http.Client
}

// NewPusher returns a pusher signing with creds.
func NewPusher(hubURL string, creds Credentials) *Pusher {
	return &Pusher{HubURL: strings.TrimSuffix(hubURL, "/"), Client: &http.Client{Timeout: 10 * time.Second, Transport: &sign.Transport{KeyID: creds.KeyID, Secret: creds.Secret}}}
}

// Put sends one signed PUT and returns the status and body.
func (p *Pusher) Put(ctx context.Context, path string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.HubURL+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, out, nil
}

// PushCemetery pushes a cemetery's (or columbarium's) profile and n burial records.
func PushCemetery(ctx context.Context, p *Pusher, index int, columbarium bool, n int, now time.Time) error {
	typ, name, burial := "cemetery", fmt.Sprintf("上海市模拟公墓%02d", index), "tree"
	if columbarium {
		typ, name, burial = "columbarium", fmt.Sprintf("上海市模拟骨灰堂%02d", index), "niche"
	}
	var errs []error
	check := func(code int, body []byte, err error) {
		if err != nil {
			errs = append(errs, err)
		} else if code >= 300 {
			errs = append(errs, fmt.Errorf("%d: %s", code, body))
		}
	}
	check(p.Put(ctx, "/partner/v1/institution", map[string]any{"version": 1, "name": name, "type": typ,
		"credit_code": fmt.Sprintf("5231000042501%04dX", index), "division_code": "310112", "address": fmt.Sprintf("上海市模拟路 %d 号", index), "phone": "021-64001234"}))
	for k := 0; k < n; k++ {
		check(p.Put(ctx, fmt.Sprintf("/partner/v1/burials/B-%02d-%04d", index, k+1), map[string]any{"version": 1,
			"deceased_name": "王某某", "id_number": simID(index+100, k), "burial_date": now.In(clock.Shanghai).AddDate(0, 0, -k).Format(time.DateOnly),
			"burial_type": burial, "plot_code": fmt.Sprintf("园-%d-%03d", index, k+1), "certificate_no": fmt.Sprintf("AZ%02d%05d", index, k+1),
			"contact": map[string]any{"name": "家属", "relation": "子", "phone": fmt.Sprintf("137%04d%04d", index, k)}}))
	}
	return errors.Join(errs...)
}

// del withdraws one record.
func (h *Home) del(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimSuffix(h.cfg.HubURL, "/")+path, http.NoBody)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.count(false)
		return fmt.Errorf("DELETE %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		h.count(false)
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("DELETE %s: %d: %s", path, resp.StatusCode, msg)
	}
	h.count(true)
	return nil
}

// Exercise runs every push operation an integrator must show in the
// sandbox: the full data twice (so every kind is updated with a higher
// version), a reservation made and cancelled at the counter, and a supply
// withdrawn. After it, the pusher conformance run passes.
func (h *Home) Exercise(ctx context.Context) error {
	if err := h.PushAll(ctx); err != nil {
		return err
	}
	if err := h.PushAll(ctx); err != nil {
		return err
	}
	now := h.cfg.Clock.Now().In(clock.Shanghai)
	day := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, clock.Shanghai)
	start := day.Add(time.Duration(dayStarts[0]) * time.Minute)
	rv := Reservation{ReservationID: fmt.Sprintf("R-C%02d-0001", h.cfg.Index), ResourceType: "hall", ResourceID: "H-01",
		StartAt: start.Format(time.RFC3339), EndAt: start.Add(slotMinutes * time.Minute).Format(time.RFC3339), Status: "confirmed"}
	body := func(status string) map[string]any {
		return map[string]any{"resource_type": rv.ResourceType, "resource_id": rv.ResourceID, "start_at": rv.StartAt, "end_at": rv.EndAt,
			"status": status, "channel": "counter", "deceased_name": "测试某某", "reason": "家属改期"}
	}
	return errors.Join(
		h.put(ctx, "/partner/v1/reservations/"+rv.ReservationID, body("confirmed")),
		h.put(ctx, "/partner/v1/reservations/"+rv.ReservationID, body("cancelled")),
		h.del(ctx, "/partner/v1/supplies/S-WRE-01"),
	)
}

// SetHub points the pusher at a hub (for tools that push on demand with
// PushAll or Exercise instead of the background loop).
func (h *Home) SetHub(url string) { h.cfg.HubURL = url }
