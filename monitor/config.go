package monitor

import (
	"errors"
	"fmt"
	"path"
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
	// FlushSize is the batch size that triggers a flush; 0 takes the store's: 1,000 events for sqlite (larger batches gain SQLite little and cost the embedded hub memory), 10,000 for clickhouse (each insert writes a part).
	FlushSize int `yaml:"flush_size"`
	// BufferSize caps events held in memory while the store is down; beyond it events are dropped and counted.
	BufferSize int `yaml:"buffer_size"`
	// Schedules give the expected gap between successes per partner flow (health matrix, staleness alerts).
	Schedules []FlowSchedule `yaml:"schedules"`
	// Thresholds set the health colour bands and the error-rate and backlog alert rules.
	Thresholds Thresholds `yaml:"thresholds"`
	// StuckAfter marks a batch stage as stuck when it has not finished and its newest event is older.
	StuckAfter time.Duration `yaml:"stuck_after"`
	// Expectations are recurring expected exchanges; a missed one raises an alert and an expectation_missed event.
	Expectations []ExpectationRule `yaml:"expectations"`
	// CheckInterval is how often expectations and alert rules are evaluated.
	CheckInterval time.Duration `yaml:"check_interval"`
	// Quality holds the data-quality rules and the periodic report.
	Quality QualityConfig `yaml:"quality"`
	// RetentionMonths keeps this many whole months of events (the current one included); 0 keeps everything.
	RetentionMonths int `yaml:"retention_months"`
}

// QualityConfig configures data-quality scoring and the periodic report.
type QualityConfig struct {
	// Rules set per partner flow thresholds; flows without a rule use the defaults of the first rule with an empty partner, or built-in ones.
	Rules []QualityRule `yaml:"rules"`
	// ReportDir receives the periodic report (HTML and CSV); empty disables writing it.
	ReportDir string `yaml:"report_dir"`
	// ReportEvery is the report period (e.g. 24h or 168h); each report covers the period before it.
	ReportEvery time.Duration `yaml:"report_every"`
	// SampleSize is how many answered exchanges per partner flow are picked at random for manual review.
	SampleSize int `yaml:"sample_size"`
}

// QualityRule sets data-quality thresholds for a partner flow.
type QualityRule struct {
	// Partner the rule applies to; empty matches every partner.
	Partner string `yaml:"partner"`
	// Flow the rule applies to; empty matches every flow.
	Flow string `yaml:"flow"`
	// AnswerWithin is the timeliness limit: a step slower than this counts as late.
	// One of 1s, 2s, 5s, 10s, 15s, 30s, 1m, 2m, 5m, 10m, 30m or 1h (monitor.SlowBounds)
	// is scored from the hourly rollups; any other value from the raw events
	// (slower on long windows).
	AnswerWithin time.Duration `yaml:"answer_within"`
	// MinScore raises a quality alert when the partner flow's score (0..100) falls below it; 0 disables.
	MinScore float64 `yaml:"min_score"`
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
		FlushSize:     0, // by store: FlushSizeFor
		BufferSize:    200000,
		Thresholds:    Thresholds{ErrorRateAmber: 0.05, ErrorRateRed: 0.2, BacklogAmber: 1, BacklogRed: 100},
		StuckAfter:    2 * time.Hour,
		CheckInterval: time.Minute,
		Quality:       QualityConfig{ReportEvery: 24 * time.Hour, SampleSize: 5},
	}
}

// Default batch sizes of the event writer by store (monitor.flush_size 0).
// A batch array of 10,000 events is about 3 MiB and the writer keeps up to
// three (one filling, two spares): the embedded profile's SQLite store
// takes small batches as fast, ClickHouse wants large ones.
const (
	SQLiteFlushSize     = 1000
	ClickHouseFlushSize = 10000
)

// EffectiveFlushSize returns FlushSize, or the store's default when it is 0.
func (c Config) EffectiveFlushSize() int {
	if c.FlushSize > 0 {
		return c.FlushSize
	}
	if c.Store == "clickhouse" {
		return ClickHouseFlushSize
	}
	return SQLiteFlushSize
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
	if c.FlushSize < 0 {
		errs = append(errs, fmt.Errorf("monitor.flush_size: %d: must not be negative (0: the store's default)", c.FlushSize))
	}
	if fs := c.EffectiveFlushSize(); c.BufferSize < fs {
		errs = append(errs, fmt.Errorf("monitor.buffer_size: %d: must be at least flush_size (%d)", c.BufferSize, fs))
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
	names := map[string]bool{}
	for i, e := range c.Expectations {
		if e.Name == "" || e.Partner == "" || e.Flow == "" {
			errs = append(errs, fmt.Errorf("monitor.expectations[%d]: name, partner and flow are required", i))
		}
		if names[e.Name] {
			errs = append(errs, fmt.Errorf("monitor.expectations[%d]: name %q used twice", i, e.Name))
		}
		names[e.Name] = true
		if _, err := ParseSchedule(e.Schedule); err != nil {
			errs = append(errs, fmt.Errorf("monitor.expectations[%d].schedule: %w", i, err))
		}
		if e.FilePattern != "" {
			if _, err := path.Match(e.FilePattern, ""); err != nil {
				errs = append(errs, fmt.Errorf("monitor.expectations[%d].file_pattern: %w", i, err))
			}
		}
	}
	if c.CheckInterval <= 0 {
		errs = append(errs, errors.New("monitor.check_interval: must be positive"))
	}
	for i, r := range c.Quality.Rules {
		if r.AnswerWithin < 0 || r.MinScore < 0 || r.MinScore > 100 {
			errs = append(errs, fmt.Errorf("monitor.quality.rules[%d]: answer_within must not be negative and min_score must be 0..100", i))
		}
	}
	if c.Quality.ReportDir != "" && c.Quality.ReportEvery <= 0 {
		errs = append(errs, errors.New("monitor.quality.report_every: must be positive when report_dir is set"))
	}
	if c.Quality.SampleSize < 0 {
		errs = append(errs, errors.New("monitor.quality.sample_size: must not be negative"))
	}
	if c.RetentionMonths < 0 {
		errs = append(errs, errors.New("monitor.retention_months: must not be negative"))
	}
	if c.StuckAfter < 0 {
		errs = append(errs, errors.New("monitor.stuck_after: must not be negative"))
	}
	return errors.Join(errs...)
}
