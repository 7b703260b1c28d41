package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func migrationsV1() fstest.MapFS {
	return fstest.MapFS{
		"001_people.sql": {Data: []byte(`CREATE TABLE people (id {{AUTO_ID}}, name TEXT NOT NULL, photo {{BYTES}})`)},
	}
}

func migrationsV2() fstest.MapFS {
	fs := migrationsV1()
	fs["002_people_district.sql"] = &fstest.MapFile{Data: []byte(`ALTER TABLE people ADD COLUMN district TEXT NOT NULL DEFAULT '310101'`)}
	return fs
}

func TestMigrate(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "people", migrationsV1()); err != nil {
			t.Fatalf("fresh migrate: %v", err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO people (name) VALUES (?)`), "张三"); err != nil {
			t.Fatalf("insert after v1: %v", err)
		}
		// Re-running is a no-op; a newer set applies only what is new and keeps data.
		if err := db.Migrate(ctx, "people", migrationsV1()); err != nil {
			t.Fatalf("re-migrate: %v", err)
		}
		if err := db.Migrate(ctx, "people", migrationsV2()); err != nil {
			t.Fatalf("migrate existing db to v2: %v", err)
		}
		var name, district string
		if err := db.QueryRowContext(ctx, `SELECT name, district FROM people`).Scan(&name, &district); err != nil {
			t.Fatal(err)
		}
		if name != "张三" || district != "310101" {
			t.Fatalf("row after v2 = %q %q", name, district)
		}
		got, err := db.Applied(ctx, "people")
		if err != nil || len(got) != 2 || got[0] != 1 || got[1] != 2 {
			t.Fatalf("applied = %v, %v", got, err)
		}
		// A binary that knows fewer migrations than the database refuses to run.
		if err := db.Migrate(ctx, "people", migrationsV1()); !errors.Is(err, store.ErrMigrationGap) {
			t.Fatalf("older binary: err = %v, want ErrMigrationGap", err)
		}
		// Components do not interfere.
		if err := db.Migrate(ctx, "other", fstest.MapFS{"001_x.sql": {Data: []byte(`CREATE TABLE other_x (k TEXT PRIMARY KEY)`)}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMigrateFailureRollsBack(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	bad := fstest.MapFS{
		"001_ok.sql":  {Data: []byte(`CREATE TABLE ok_t (k TEXT)`)},
		"002_bad.sql": {Data: []byte(`CREATE TABLE bad_t (k TEXT); THIS IS NOT SQL`)},
	}
	if err := db.Migrate(ctx, "c", bad); err == nil {
		t.Fatal("migrate with a broken file succeeded")
	}
	got, _ := db.Applied(ctx, "c")
	if len(got) != 1 {
		t.Fatalf("applied = %v, want only version 1", got)
	}
}

func TestLoadMigrationsErrors(t *testing.T) {
	tests := []struct {
		name string
		fs   fstest.MapFS
		want error
	}{
		{"bad name", fstest.MapFS{"init.sql": {Data: []byte("x")}}, store.ErrBadMigrationName},
		{"gap", fstest.MapFS{"001_a.sql": {Data: []byte("x")}, "003_c.sql": {Data: []byte("x")}}, store.ErrMigrationGap},
		{"duplicate", fstest.MapFS{"001_a.sql": {Data: []byte("x")}, "001_b.sql": {Data: []byte("x")}}, store.ErrBadMigrationName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := store.LoadMigrations(tt.fs, store.SQLite); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("dialect specific", func(t *testing.T) {
		fs := fstest.MapFS{
			"001_a.sqlite.sql":   {Data: []byte("sqlite")},
			"001_a.postgres.sql": {Data: []byte("postgres")},
		}
		for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
			ms, err := store.LoadMigrations(fs, d)
			if err != nil || len(ms) != 1 || ms[0].SQL != string(d) {
				t.Fatalf("%s: %v %v", d, ms, err)
			}
		}
	})
}

func TestOpenSQLiteWAL(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "nested", "dir", "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	if db.Dialect() != store.SQLite {
		t.Fatalf("dialect = %s", db.Dialect())
	}
	// Every connection of the pool has the configured page cache (a
	// negative cache_size is in KiB).
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		var kib int
		if err := c.QueryRowContext(context.Background(), `PRAGMA cache_size`).Scan(&kib); err != nil {
			t.Fatal(err)
		}
		if kib != -cfg.SQLiteCacheKiB || kib == 0 {
			t.Errorf("connection %d: cache_size = %d, want %d", i, kib, -cfg.SQLiteCacheKiB)
		}
	}
	// The database, its WAL and shared memory, and the folders made for
	// it are the owner's only.
	if _, err := db.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cfg.Path, cfg.Path + "-wal", cfg.Path + "-shm", filepath.Dir(cfg.Path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want owner only", filepath.Base(p), perm)
		}
	}
}

// TestOpenSQLiteTightensMode: a database an earlier version left readable
// by others is restricted to its owner on open.
func TestOpenSQLiteTightensMode(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "mzhub.db")
	if err := os.WriteFile(cfg.Path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if fi, err := os.Stat(cfg.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT * FROM t WHERE a = ? AND b = ?`, `SELECT * FROM t WHERE a = $1 AND b = $2`},
		{`SELECT '?' , ?`, `SELECT '?' , $1`},
	}
	for _, tt := range tests {
		if got := store.RebindDollar(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	cfg := store.Config{Driver: "oracle", MaxOpenConns: 0, BusyTimeout: -1, SQLiteCacheKiB: -1}
	err := cfg.Validate()
	if !errors.Is(err, store.ErrUnknownDriver) {
		t.Fatalf("err = %v", err)
	}
	for _, w := range []string{"store.driver", "store.max_open_conns", "store.busy_timeout", "store.sqlite_cache_kib"} {
		if err == nil || !contains(err.Error(), w) {
			t.Errorf("error lacks %s: %v", w, err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestIsTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("database is locked (5) (SQLITE_BUSY)"), true},
		{fmt.Errorf("reconcile: %w", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}), true},
		{&pgconn.PgError{Code: "40001"}, true},
		{&pgconn.PgError{Code: "23505", Message: "duplicate key"}, false},
		{errors.New("no such table: x"), false},
	}
	for _, tt := range tests {
		if got := store.IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
