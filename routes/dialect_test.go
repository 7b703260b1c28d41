package routes_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestSchemaDialects: the engine's schema and dead-letter queries work on
// every dialect (PostgreSQL when MZHUB_TEST_POSTGRES is set).
func TestSchemaDialects(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := routes.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		if err := routes.Migrate(ctx, db); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		dl := routes.NewDeadLetters(db)
		if err := routes.AddDeadLetter(dl, "r1", "partner", "POST http://x", errors.New("503 for 310101199001011234"), 3); err != nil {
			t.Fatal(err)
		}
		list, err := dl.List(ctx, routes.ListFilter{Route: "r1"})
		if err != nil || len(list) != 1 {
			t.Fatalf("list: %v %v", list, err)
		}
		// The console finds an open dead letter by its exchange id (the idempotency key).
		if id, err := dl.FindOpen(ctx, "k"); err != nil || id != list[0].ID {
			t.Fatalf("find open: %d %v, want %d", id, err, list[0].ID)
		}
		if _, err := dl.FindOpen(ctx, "no-such-exchange"); !errors.Is(err, routes.ErrNotFound) {
			t.Fatalf("find unknown: %v", err)
		}
		if err := dl.Drop(ctx, list[0].ID, "ops.li", nil); err != nil {
			t.Fatal(err)
		}
		if err := dl.Drop(ctx, list[0].ID, "ops.li", nil); err == nil {
			t.Fatal("second drop succeeded")
		}
		if _, err := dl.FindOpen(ctx, "k"); !errors.Is(err, routes.ErrNotFound) {
			t.Fatalf("find after drop: %v, want not found", err)
		}
		if _, err := dl.Get(ctx, 999); !errors.Is(err, routes.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
		if n, err := routes.LedgerRoundTrip(db); err != nil || n != "done" {
			t.Fatalf("ledger: %q %v", n, err)
		}
	})
}
