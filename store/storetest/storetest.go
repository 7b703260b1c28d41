// Package storetest opens state databases for tests: a fresh SQLite file per
// test, and PostgreSQL when MZHUB_TEST_POSTGRES names a server.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/store"
)

// Open returns a fresh SQLite state database in t.TempDir(), closed when the
// test ends.
func Open(t testing.TB) *store.DB {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("storetest: open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// OpenPostgres returns a database in a fresh schema of the PostgreSQL server
// named by MZHUB_TEST_POSTGRES (a DSN), dropped when the test ends. It skips
// the test when the variable is unset.
func OpenPostgres(t testing.TB) *store.DB {
	t.Helper()
	dsn := os.Getenv("MZHUB_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping PostgreSQL test (deploy/postgres/start.sh starts a server)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := store.Open(ctx, store.Config{Driver: "postgres", DSN: dsn, MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("storetest: open postgres: %v", err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema: %v", err)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := store.Open(ctx, store.Config{Driver: "postgres", DSN: dsn + sep + "search_path=" + schema, MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("storetest: open postgres schema: %v", err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("storetest: drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	return db
}

// Dialects runs fn once per available dialect: SQLite always, PostgreSQL
// when MZHUB_TEST_POSTGRES is set. Use it for suites that every store
// implementation must pass.
func Dialects(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, Open(t)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("MZHUB_TEST_POSTGRES") == "" {
			t.Skip("MZHUB_TEST_POSTGRES not set: skipping PostgreSQL variant")
		}
		fn(t, OpenPostgres(t))
	})
}

// Name returns a unique name for test objects.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s_%s", prefix, hex.EncodeToString(b))
}

// Until waits for cond, a signal polled every millisecond (not a time
// slept), failing the test after a minute.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
