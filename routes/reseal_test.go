package routes_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func testRing(t *testing.T, kids ...string) *fieldcrypt.Ring {
	t.Helper()
	fk := map[string][]byte{}
	for _, k := range kids {
		fk[k] = bytes.Repeat([]byte(k[len(k)-1:]), 16)
	}
	r, err := fieldcrypt.NewRing(fk, bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDeadLettersFollowTheKeyRotation: `mzhub keys reencrypt`'s target for
// dead letters moves their sealed bodies to the new key and keeps the rest
// of the stored message; with the old key dropped, the dead letter opens.
func TestDeadLettersFollowTheKeyRotation(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := routes.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := routes.AddDeadLetter(routes.NewDeadLetters(db).SealWith(testRing(t, "k1")), "r1", "partner", "POST http://x", errors.New("503"), 3); err != nil {
			t.Fatal(err)
		}
		if err := routes.AddDeadLetter(routes.NewDeadLetters(db), "r1", "partner", "POST http://x", errors.New("503"), 3); err != nil {
			t.Fatal(err)
		}
		var target fieldcrypt.Target
		for _, tg := range fieldcrypt.Registered() {
			if tg.String() == "routes_dead_letters.msg" {
				target = tg
			}
		}
		if target == nil {
			t.Fatal("the route engine registers no sealed target")
		}
		m, err := target.Move(ctx, fieldcrypt.Place{DB: db}, testRing(t, "k1", "k2"))
		if err != nil || m.Values != 1 || m.Failed != 0 {
			t.Fatalf("move: %+v %v", m, err)
		}
		list, err := routes.NewDeadLetters(db).SealWith(testRing(t, "k2")).List(ctx, routes.ListFilter{Route: "r1"})
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %v %v", list, err)
		}
		for _, d := range list {
			if string(d.Message.Body) != "{}" || d.Message.IdempotencyKey != "k" || d.Message.Headers[bus.HeaderSealed] != "" {
				t.Fatalf("dead letter %d after the old key was dropped: %+v", d.ID, d.Message)
			}
		}
	})
}
