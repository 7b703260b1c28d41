package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
)

// sealer is a field-key ring holding kids (16-byte SM4 keys derived from
// the kid, for tests only).
func sealer(t testing.TB, kids ...string) *fieldcrypt.Ring {
	t.Helper()
	fk := map[string][]byte{}
	for _, k := range kids {
		fk[k] = bytes.Repeat([]byte(k), 16)[:16]
	}
	r, err := fieldcrypt.NewRing(fk, []byte("blind index key for the bus test"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dirBytes returns every file of dir concatenated (the database, its WAL).
func dirBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func receiveWithin(t *testing.T, s bus.Subscription, d time.Duration) bus.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	dl, err := s.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return dl
}

// TestSealedBodiesAtRest publishes payment records through a sealed bus:
// neither the ID numbers nor the account numbers are in the database files
// (unsealed, they are), consumers get the bodies back, and a message
// dead-lettered by the bus stays sealed there too.
func TestSealedBodiesAtRest(t *testing.T) {
	const id, account = "310101199001011234", "6222021234567890123"
	body := []byte(`{"id_number":"` + id + `","account":"` + account + `","amount_fen":120000}`)
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "sealed"}[sealed], func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			cfg.CacheBytes = 0
			raw, err := local.Open(context.Background(), openDB(t, filepath.Join(dir, "state.db")), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			var b bus.Bus = raw
			if sealed {
				b = bus.Sealed(raw, sealer(t, "k1"))
			}
			ctx := context.Background()
			s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "pay", Subscription: "s", MaxDeliveries: 1})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				m := bus.Message{Key: "p", IdempotencyKey: strings.Repeat("i", i+1), Headers: map[string]string{"partner": "boc"}, Body: body}
				if err := b.Publish(ctx, "pay", m); err != nil {
					t.Fatal(err)
				}
			}
			d := receiveWithin(t, s, 5*time.Second)
			if got := d.Message(); !bytes.Equal(got.Body, body) || got.Headers["partner"] != "boc" || got.Headers[bus.HeaderSealed] != "" {
				t.Fatalf("delivered %q %v", got.Body, got.Headers)
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			// The second goes to the dead-letter topic.
			d = receiveWithin(t, s, 5*time.Second)
			if err := d.Nack(ctx, 0, errors.New("bank down")); err != nil {
				t.Fatal(err)
			}
			dlq, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "pay.dlq", Subscription: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			if got := receiveWithin(t, dlq, 5*time.Second).Message(); !bytes.Equal(got.Body, body) {
				t.Fatalf("dead letter body %q", got.Body)
			}
			_ = s.Close(ctx)
			_ = dlq.Close(ctx)
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			disk := dirBytes(t, dir)
			for _, v := range []string{id, account} {
				if found := bytes.Contains(disk, []byte(v)); found != !sealed {
					t.Errorf("%s on disk: %v (sealed %v)", v[:4], found, sealed)
				}
			}
		})
	}
}

// TestSealedBusMixedHistory: messages stored before sealing was turned on
// are delivered as they are; a body that cannot be opened (key retired) is
// nacked and dead-lettered, still sealed, and the next message flows.
func TestSealedBusMixedHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	raw, err := local.Open(ctx, db, testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Plain, then sealed under a key the consumer's ring no longer holds,
	// then sealed under the current one.
	if err := raw.Publish(ctx, "t", bus.Message{IdempotencyKey: "plain", Body: []byte("before sealing")}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Sealed(raw, sealer(t, "k0")).Publish(ctx, "t", bus.Message{IdempotencyKey: "retired", Body: []byte("old key")}); err != nil {
		t.Fatal(err)
	}
	b := bus.Sealed(raw, sealer(t, "k1"))
	if err := b.Publish(ctx, "t", bus.Message{IdempotencyKey: "current", Body: []byte("new key")}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: "s", MaxDeliveries: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"before sealing", "new key"} {
		d := receiveWithin(t, s, 5*time.Second)
		if got := string(d.Message().Body); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dlq, err := raw.Subscribe(ctx, bus.SubscribeOptions{Topic: "t.dlq", Subscription: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	got := receiveWithin(t, dlq, 5*time.Second).Message()
	if got.IdempotencyKey != "retired" || fieldcrypt.SealedKID(got.Body) != "k0" || !strings.Contains(got.Headers[bus.HeaderDeadLetterCause], "unknown key") {
		t.Errorf("dead letter %s, kid %q, cause %q", got.IdempotencyKey, fieldcrypt.SealedKID(got.Body), got.Headers[bus.HeaderDeadLetterCause])
	}
	_ = s.Close(ctx)
	_ = dlq.Close(ctx)
	_ = b.Close(ctx)
}
