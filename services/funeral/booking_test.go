package funeral_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

func TestBookingThroughTheHub(t *testing.T) {
	ctx := context.Background()
	bookingSecret := []byte("hub-booking-secret-fh05")
	home, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: 5, Booking: funeralhomesim.Credentials{KeyID: "hub-fh05", Secret: bookingSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close(ctx)
	slow, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: 6, Booking: funeralhomesim.Credentials{KeyID: "hub-fh06", Secret: bookingSecret}, Faults: funeralhomesim.Faults{Delay: 4 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close(ctx)
	reg, err := funeral.NewRegistry([]funeral.Partner{
		{ID: "funeral.fh05", Name: "五", Role: funeral.RoleFuneralHome, Environments: []string{"production"}, BookingURL: home.URL(), BookingKeyID: "hub-fh05"},
		{ID: "funeral.fh06", Name: "六", Role: funeral.RoleFuneralHome, Environments: []string{"production"}, BookingURL: slow.URL(), BookingKeyID: "hub-fh06"},
		{ID: "cemetery.cm01", Name: "墓", Role: funeral.RoleCemetery, Environments: []string{"production"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := funeral.NewBooking(reg, funeral.BookingOptions{Timeout: time.Second,
		Secret: func(_ context.Context, k string) ([]byte, error) {
			if k == "hub-fh05" || k == "hub-fh06" {
				return bookingSecret, nil
			}
			return nil, sign.ErrUnknownKey
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler("/internal/funeral"))
	defer srv.Close()
	call := func(method, path, idem, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	code, av := call("GET", "/internal/funeral/v1/homes/funeral.fh05/availability?resource_type=hall&date=2026-12-01", "", "")
	if code != 200 || len(av["resources"].([]any)) != 4 {
		t.Fatalf("availability: %d %v", code, av)
	}
	slot := av["resources"].([]any)[0].(map[string]any)["slots"].([]any)[0].(map[string]any)
	body := `{"hub_reference":"BK-1","resource_type":"hall","resource_id":"H-01","start_at":"` + slot["start_at"].(string) + `","end_at":"` + slot["end_at"].(string) +
		`","deceased_name":"张某某","contact":{"name":"张三","phone":"13812345678"}}`
	code, rv := call("POST", "/internal/funeral/v1/homes/funeral.fh05/reservations", "portal-000001", body)
	if code != 201 || rv["status"] != "confirmed" {
		t.Fatalf("reserve: %d %v", code, rv)
	}
	code, again := call("POST", "/internal/funeral/v1/homes/funeral.fh05/reservations", "portal-000001", body)
	if code != 201 || again["reservation_id"] != rv["reservation_id"] {
		t.Fatalf("retry: %d %v", code, again)
	}
	if code, p := call("POST", "/internal/funeral/v1/homes/funeral.fh05/reservations", "portal-000002", body); code != 409 || p["code"] != "slot_unavailable" {
		t.Fatalf("double booking: %d %v", code, p)
	}
	if code, p := call("POST", "/internal/funeral/v1/homes/funeral.fh05/reservations", "", body); code != 422 {
		t.Fatalf("no idempotency key: %d %v", code, p)
	}
	id := rv["reservation_id"].(string)
	if code, c := call("POST", "/internal/funeral/v1/homes/funeral.fh05/reservations/"+id+"/cancel", "portal-000003", `{"reason":"改期"}`); code != 200 || c["status"] != "cancelled" {
		t.Fatalf("cancel: %d %v", code, c)
	}
	if code, p := call("GET", "/internal/funeral/v1/homes/cemetery.cm01/availability?resource_type=hall&date=2026-12-01", "", ""); code != 404 {
		t.Fatalf("cemetery: %d %v", code, p)
	}
	start := time.Now()
	if code, p := call("GET", "/internal/funeral/v1/homes/funeral.fh06/availability?resource_type=hall&date=2026-12-01", "", ""); code != 502 || p["code"] != "upstream_unavailable" {
		t.Fatalf("slow home: %d %v", code, p)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("the deadline was not kept: %s", time.Since(start))
	}
	if code, _ := call("GET", "/internal/funeral/v1/homes/funeral.fh05/availability?resource_type=boat&date=x", "", ""); code != 422 {
		t.Fatalf("bad query: %d", code)
	}
}
