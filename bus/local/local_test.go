package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/bustest"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func testConfig() bus.LocalConfig {
	return bus.DefaultConfig().Local
}

// openDB opens (or reopens) the SQLite state file at path.
func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Path = path
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func openBus(t testing.TB, db *store.DB) *local.Bus {
	t.Helper()
	b, err := local.Open(context.Background(), db, testConfig(), nil)
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	return b
}

func TestSuite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache int64
	}{
		{"cached", testConfig().CacheBytes},
		// No body in memory: every delivery reads its body from the table.
		{"uncached", 0},
		// Bodies sealed at rest (bus.Sealed, SM4-GCM), as the hub runs it.
		{"sealed", testConfig().CacheBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bustest.Run(t, func(t *testing.T) func() bus.Bus {
				path := filepath.Join(t.TempDir(), "state.db")
				return func() bus.Bus {
					// A restart reopens the database file too, as the hub does.
					cfg := testConfig()
					cfg.CacheBytes = tc.cache
					b, err := local.Open(context.Background(), openDB(t, path), cfg, nil)
					if err != nil {
						t.Fatalf("open bus: %v", err)
					}
					if tc.name == "sealed" {
						return bus.Sealed(b, sealer(t, "k1"))
					}
					return b
				}
			})
		})
	}
}

func TestOpenValidates(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	for _, cfg := range []bus.LocalConfig{{MaxBatch: 0}, {MaxBatch: 1, CommitInterval: -time.Second}, {MaxBatch: 1, CacheBytes: -1}} {
		if _, err := local.Open(context.Background(), db, cfg, nil); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

// TestIDsNeverReused checks that a message id is not given again after its
// message was acked and deleted, across a restart.
func TestIDsNeverReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := context.Background()
	lastID := func(b *local.Bus) int64 {
		s, err := b.Subscribe(ctx, bus.SubscribeOptions{Topic: "ids", Subscription: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, "ids", bus.Message{Body: []byte("x")}, bus.Message{Body: []byte("y")}); err != nil {
			t.Fatal(err)
		}
		var id int64
		for range 2 {
			d, err := s.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id, err = strconv.ParseInt(d.Message().ID, 10, 64); err != nil {
				t.Fatalf("id %q: %v", d.Message().ID, err)
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := lastID(openBus(t, openDB(t, path)))
	second := lastID(openBus(t, openDB(t, path)))
	if second <= first {
		t.Fatalf("id %d after restart, not above %d used before", second, first)
	}
	var n int
	if err := openDB(t, path).QueryRowContext(ctx, `SELECT COUNT(*) FROM bus_messages`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("acked messages left in bus_messages: %d (%v)", n, err)
	}
}

// TestIntegrationPostgresSuite runs the suite with the state database on
// PostgreSQL (the local bus normally lives in the embedded profile's SQLite
// file, but the schema and SQL are portable). It skips unless
// MZHUB_TEST_POSTGRES is set.
func TestIntegrationPostgresSuite(t *testing.T) {
	if os.Getenv("MZHUB_TEST_POSTGRES") == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping the local bus on PostgreSQL (deploy/postgres/start.sh starts a server)")
	}
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		db := storetest.OpenPostgres(t)
		return func() bus.Bus { return openBus(t, db) }
	})
}
