package local_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/routes/bus"
	"github.com/shanghai-mca/mzhub/routes/bus/bustest"
	"github.com/shanghai-mca/mzhub/routes/bus/local"
	"github.com/shanghai-mca/mzhub/store"
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
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		path := filepath.Join(t.TempDir(), "state.db")
		return func() bus.Bus {
			// A restart reopens the database file too, as the hub does.
			return openBus(t, openDB(t, path))
		}
	})
}

func TestOpenValidates(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	for _, cfg := range []bus.LocalConfig{{MaxBatch: 0}, {MaxBatch: 1, CommitInterval: -time.Second}} {
		if _, err := local.Open(context.Background(), db, cfg, nil); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}
