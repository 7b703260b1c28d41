package monitor

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the monitor.
type Config struct {
	// Store is "sqlite" (the state database file's sibling, embedded profile) or "clickhouse".
	Store string `yaml:"store"`
	// SQLitePath is the monitor database file for store sqlite.
	SQLitePath string `yaml:"sqlite_path"`
	// ClickHouse configures the ClickHouse store.
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	// FlushInterval is the longest an event waits in the writer before it is stored.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// FlushSize is the batch size that triggers a flush.
	FlushSize int `yaml:"flush_size"`
	// BufferSize caps events held in memory while the store is down; beyond it events are dropped and counted.
	BufferSize int `yaml:"buffer_size"`
	// Schedules give the expected gap between successes per partner flow (health matrix, staleness alerts).
	Schedules []FlowSchedule `yaml:"schedules"`
	// Thresholds set the health colour bands and the error-rate and backlog alert rules.
	Thresholds Thresholds `yaml:"thresholds"`
	// StuckAfter marks a batch stage as stuck when it has not finished and its newest event is older.
	StuckAfter time.Duration `yaml:"stuck_after"`
}

// ClickHouseConfig configures the ClickHouse event store.
type ClickHouseConfig struct {
	// Addr is host:port of the native protocol, e.g. 127.0.0.1:9000.
	Addr string `yaml:"addr"`
	// Database holding the event tables.
	Database string `yaml:"database"`
	// Username for ClickHouse.
	Username string `yaml:"username"`
	// Password for ClickHouse; set it with MZHUB_MONITOR_CLICKHOUSE_PASSWORD.
	Password string `yaml:"password"`
}

// DefaultConfig returns the embedded-profile defaults.
func DefaultConfig() Config {
	return Config{
		Store:         "sqlite",
		SQLitePath:    "data/monitor.db",
		ClickHouse:    ClickHouseConfig{Database: "mzhub", Username: "default"},
		FlushInterval: time.Second,
		FlushSize:     10000,
		BufferSize:    200000,
		Thresholds:    Thresholds{ErrorRateAmber: 0.05, ErrorRateRed: 0.2, BacklogAmber: 1, BacklogRed: 100},
		StuckAfter:    2 * time.Hour,
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	switch c.Store {
	case "sqlite":
		if c.SQLitePath == "" {
			errs = append(errs, errors.New("monitor.sqlite_path: required for store sqlite"))
		}
	case "clickhouse":
		if c.ClickHouse.Addr == "" {
			errs = append(errs, errors.New("monitor.clickhouse.addr: required for store clickhouse"))
		}
	default:
		errs = append(errs, fmt.Errorf("monitor.store: %q: want sqlite or clickhouse", c.Store))
	}
	if c.FlushSize < 1 {
		errs = append(errs, fmt.Errorf("monitor.flush_size: %d: must be at least 1", c.FlushSize))
	}
	if c.BufferSize < c.FlushSize {
		errs = append(errs, fmt.Errorf("monitor.buffer_size: %d: must be at least flush_size (%d)", c.BufferSize, c.FlushSize))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, errors.New("monitor.flush_interval: must be positive"))
	}
	for i, s := range c.Schedules {
		if s.Partner == "" || s.Flow == "" {
			errs = append(errs, fmt.Errorf("monitor.schedules[%d]: partner and flow are required", i))
		}
		if s.Every <= 0 {
			errs = append(errs, fmt.Errorf("monitor.schedules[%d].every: must be positive", i))
		}
	}
	th := c.Thresholds
	if th.ErrorRateAmber < 0 || th.ErrorRateAmber > 1 || th.ErrorRateRed < 0 || th.ErrorRateRed > 1 {
		errs = append(errs, errors.New("monitor.thresholds: error rates must be between 0 and 1"))
	}
	if th.BacklogAmber < 0 || th.BacklogRed < 0 {
		errs = append(errs, errors.New("monitor.thresholds: backlogs must not be negative"))
	}
	if c.StuckAfter < 0 {
		errs = append(errs, errors.New("monitor.stuck_after: must not be negative"))
	}
	return errors.Join(errs...)
}
