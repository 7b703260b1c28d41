package store

import (
	"errors"
	"fmt"
	"time"
)

// Config selects and tunes the state database.
type Config struct {
	// Driver is "sqlite" (embedded profile) or "postgres" (cluster profile).
	Driver string `yaml:"driver"`
	// Path is the SQLite database file; its directory is created when missing.
	// Used when driver is sqlite.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (postgres://user:pass@host:5432/db).
	// Used when driver is postgres. Override with MZHUB_STORE_DSN to keep the
	// password out of the file.
	DSN string `yaml:"dsn"`
	// MaxOpenConns caps open connections (PostgreSQL; SQLite uses a small fixed pool).
	MaxOpenConns int `yaml:"max_open_conns"`
	// BusyTimeout is how long a SQLite writer waits for the write lock.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
	// SQLiteCacheKiB is the page cache of each SQLite connection in KiB; 0 keeps SQLite's own (2,000). The caches live outside the Go heap, one per pooled connection, so they weigh on the embedded hub's resident memory; pages not cached are read from the operating system's file cache.
	SQLiteCacheKiB int `yaml:"sqlite_cache_kib"`
}

// DefaultConfig returns the embedded-profile defaults.
func DefaultConfig() Config {
	return Config{
		Driver:         "sqlite",
		Path:           "data/mzhub.db",
		MaxOpenConns:   16,
		BusyTimeout:    10 * time.Second,
		SQLiteCacheKiB: 512,
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	switch c.Driver {
	case "sqlite":
		if c.Path == "" {
			errs = append(errs, errors.New("store.path: required for driver sqlite"))
		}
	case "postgres":
		if c.DSN == "" {
			errs = append(errs, errors.New("store.dsn: required for driver postgres (or set MZHUB_STORE_DSN)"))
		}
	default:
		errs = append(errs, fmt.Errorf("store.driver: %q: %w (want sqlite or postgres)", c.Driver, ErrUnknownDriver))
	}
	if c.MaxOpenConns < 1 {
		errs = append(errs, fmt.Errorf("store.max_open_conns: %d: must be at least 1", c.MaxOpenConns))
	}
	if c.SQLiteCacheKiB < 0 {
		errs = append(errs, fmt.Errorf("store.sqlite_cache_kib: %d: must not be negative (0: SQLite's default)", c.SQLiteCacheKiB))
	}
	if c.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("store.busy_timeout: %s: must not be negative", c.BusyTimeout))
	}
	return errors.Join(errs...)
}
