package funeralhome_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
)

func startSim(t *testing.T, f funeralhomesim.Faults) *funeralhomesim.Home {
	t.Helper()
	h, err := funeralhomesim.Start(context.Background(), funeralhomesim.Config{Index: 2, Booking: funeralhomesim.Credentials{KeyID: "hub-fh02", Secret: []byte("booking-secret")}, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func testConfig(url string) funeralhome.Config {
	c := funeralhome.DefaultConfig()
	c.Partner, c.BaseURL, c.KeyID = "funeralhome.fh02", url, "hub-fh02"
	c.Timeout = 2 * time.Second
	return c
}

func TestClientAgainstSimulator(t *testing.T) {
	home := startSim(t, funeralhomesim.Faults{})
	c, err := funeralhome.NewClient(testConfig(home.URL()), []byte("booking-secret"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	av, err := c.Availability(ctx, "hall", "2026-11-28")
	if err != nil || len(av.Resources) != 4 || len(av.Resources[0].Slots) != 4 {
		t.Fatalf("availability %+v %v", av, err)
	}
	s := av.Resources[0].Slots[0]
	req := funeralhome.ReservationRequest{HubReference: "BK-1", ResourceType: "hall", ResourceID: av.Resources[0].ResourceID, StartAt: s.StartAt, EndAt: s.EndAt,
		DeceasedName: "张某某", Contact: funeralhome.Contact{Name: "张三", Phone: "13812345678"}}
	r1, err := c.Reserve(ctx, "bk-000000001", req)
	if err != nil || r1.Status != "confirmed" {
		t.Fatalf("reserve %+v %v", r1, err)
	}
	r2, err := c.Reserve(ctx, "bk-000000001", req)
	if err != nil || r2.ReservationID != r1.ReservationID {
		t.Fatalf("retry booked again: %+v %v", r2, err)
	}
	_, err = c.Reserve(ctx, "bk-000000002", req)
	if !errors.Is(err, funeralhome.ErrSlotUnavailable) || !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("double booking: %v", err)
	}
	for i := 0; i < 2; i++ {
		if r, err := c.Cancel(ctx, "cx-00000000"+string(rune('1'+i)), r1.ReservationID, "改期"); err != nil || r.Status != "cancelled" {
			t.Fatalf("cancel %d: %+v %v", i, r, err)
		}
	}
	if got, err := c.Reservation(ctx, r1.ReservationID); err != nil || got.Status != "cancelled" {
		t.Fatalf("get %+v %v", got, err)
	}
	// A wrong key is refused by the home.
	bad, _ := funeralhome.NewClient(testConfig(home.URL()), []byte("wrong"))
	var re *funeralhome.RemoteError
	if _, err := bad.Availability(ctx, "hall", "2026-11-28"); !errors.As(err, &re) || re.Status != 401 {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestClientBreakerAndDeadline(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	cfg := testConfig(srv.URL)
	cfg.BreakerFailures = 3
	c, _ := funeralhome.NewClient(cfg, []byte("x"))
	for i := 0; i < 6; i++ {
		_, _ = c.Availability(context.Background(), "hall", "2026-11-28")
	}
	if calls != 3 {
		t.Fatalf("home called %d times; the breaker should stop after 3", calls)
	}
	slow := startSim(t, funeralhomesim.Faults{Delay: 3 * time.Second})
	cfg = testConfig(slow.URL())
	cfg.Timeout = 200 * time.Millisecond
	c, _ = funeralhome.NewClient(cfg, []byte("booking-secret"))
	start := time.Now()
	if _, err := c.Availability(context.Background(), "hall", "2026-11-28"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("deadline not kept: %v after %s", err, time.Since(start))
	}
}
