package local_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
)

// TestWaitingBodiesFollowTheKeyRotation: `mzhub keys reencrypt`'s target
// for the local bus moves the sealed bodies of waiting messages to the new
// key and leaves a plain body alone even when it looks like an envelope;
// with the old key dropped, a consumer receives every message as
// published.
func TestWaitingBodiesFollowTheKeyRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	db := openDB(t, path)
	raw, err := local.Open(ctx, db, testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lookalike := string([]byte{1, 2, 'k', '1'}) + " plain, before sealing"
	if err := raw.Publish(ctx, "t", bus.Message{IdempotencyKey: "plain", Body: []byte(lookalike)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"plain": lookalike}
	for _, k := range []string{"a", "b", "c"} {
		want[k] = "body " + k
		if err := bus.Sealed(raw, sealer(t, "k1")).Publish(ctx, "t", bus.Message{IdempotencyKey: k, Body: []byte(want[k])}); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var target fieldcrypt.Target
	for _, tg := range fieldcrypt.Registered() {
		if tg.String() == "bus_messages.body" {
			target = tg
		}
	}
	if target == nil {
		t.Fatal("the local bus registers no sealed target")
	}
	m, err := target.Move(ctx, fieldcrypt.Place{DB: db}, sealer(t, "k1", "k2"))
	if err != nil || m.Values != 3 || m.Failed != 0 {
		t.Fatalf("move: %+v %v", m, err)
	}
	if inv, _ := target.Inventory(ctx, fieldcrypt.Place{DB: db}, sealer(t, "k2")); inv["k1"] != 0 || inv["k2"] != 3 || inv[fieldcrypt.Unreadable] != 0 {
		t.Fatalf("inventory after: %v", inv)
	}
	raw, err = local.Open(ctx, db, testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.Sealed(raw, sealer(t, "k2"))
	defer b.Close(ctx)
	s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "t", Subscription: "s", MaxDeliveries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for range want {
		d := receiveWithin(t, s, 5*time.Second)
		msg := d.Message()
		if string(msg.Body) != want[msg.IdempotencyKey] {
			t.Fatalf("%s: %q", msg.IdempotencyKey, msg.Body)
		}
		delete(want, msg.IdempotencyKey)
		_ = d.Ack(ctx)
	}
}
