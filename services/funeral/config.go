package funeral

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/config"
)

// ConfigKey is the funeral section's key in the hub's configuration file.
const ConfigKey = "funeral"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Funeral configures the funeral and burial partner API (/partner/v1/).",
		Default: func() any { return DefaultConfig() },
	})
}

// ConfigFrom returns the funeral section of the hub's configuration, or the
// defaults when cfg holds none (a Config not built by config.Default,
// Decode or Load).
func ConfigFrom(cfg config.Config) Config {
	c, ok := config.SectionOf[Config](cfg, ConfigKey)
	if !ok {
		c = DefaultConfig()
	}
	if c.PartnersDir == "" {
		c.PartnersDir = filepath.Join(cfg.Paths.Partners, "funeral")
	}
	return c
}

// ResolvePaths makes PartnersDir absolute against base (config.Config.Resolve
// calls it).
func (c *Config) ResolvePaths(base string) {
	if c.PartnersDir != "" && !filepath.IsAbs(c.PartnersDir) {
		c.PartnersDir = filepath.Join(base, c.PartnersDir)
	}
}

// Config tunes the funeral partner API.
type Config struct {
	// Environment is production or sandbox; a partner is served only in the
	// environments its registry entry lists. Every hub serves the sandbox
	// under /sandbox/partner/v1/ on its own, isolated store; a hub set to
	// sandbox (the hosted sandbox) answers /partner/v1/ with 404 pointing
	// there, so integrators' test data never reaches the main store.
	Environment string `yaml:"environment"`
	// PartnersDir holds the partner registry files (*.yaml); empty means
	// the funeral directory under paths.partners, so that every path
	// derives from one base.
	PartnersDir string `yaml:"partners_dir"`
	// RatePerSecond is each partner's sustained request rate (0 turns the limit off).
	RatePerSecond float64 `yaml:"rate_per_second"`
	// RateBurst is each partner's burst.
	RateBurst int `yaml:"rate_burst"`
	// CremationWarnDays is how long a body may wait (received, not cremated)
	// before the ops view warns; partners may override it.
	CremationWarnDays int `yaml:"cremation_warn_days"`
	// StaleAfter is how long a hall, vehicle, supply or schedule may go
	// without an update before the ops view calls it stale.
	StaleAfter time.Duration `yaml:"stale_after"`
	// RelayInterval is how often stored changes are relayed to the bus.
	RelayInterval time.Duration `yaml:"relay_interval"`
	// GroupCommitWait is how long the store's writer waits for more writes
	// before committing a transaction (0: commit what is queued at once).
	// A millisecond or two trades that much latency for fewer, larger
	// transactions when the disk is slow.
	GroupCommitWait time.Duration `yaml:"group_commit_wait"`
	// PartnerReload is how often each replica checks the partner state in
	// the state store (credentials, enable/disable): a change made by
	// `mzhub partner` on any host applies on every replica within this
	// interval (plus one database query).
	PartnerReload time.Duration `yaml:"partner_reload"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Environment:       EnvProduction,
		RatePerSecond:     50,
		RateBurst:         100,
		CremationWarnDays: 7,
		StaleAfter:        72 * time.Hour,
		RelayInterval:     200 * time.Millisecond,
		PartnerReload:     2 * time.Second,
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.Environment != EnvProduction && c.Environment != EnvSandbox {
		errs = append(errs, fmt.Errorf("funeral.environment: %q: want production or sandbox", c.Environment))
	}
	if c.RatePerSecond < 0 {
		errs = append(errs, errors.New("funeral.rate_per_second: must not be negative"))
	}
	if c.RatePerSecond > 0 && c.RateBurst < 1 {
		errs = append(errs, errors.New("funeral.rate_burst: at least 1 when a rate is set"))
	}
	if c.CremationWarnDays < 1 {
		errs = append(errs, errors.New("funeral.cremation_warn_days: at least 1"))
	}
	if c.GroupCommitWait < 0 || c.GroupCommitWait > time.Second {
		errs = append(errs, fmt.Errorf("funeral.group_commit_wait: %s: want 0 to 1s", c.GroupCommitWait))
	}
	if c.PartnerReload < 10*time.Millisecond || c.PartnerReload > time.Minute {
		errs = append(errs, fmt.Errorf("funeral.partner_reload: %s: want 10ms to 1m", c.PartnerReload))
	}
	if c.StaleAfter <= 0 {
		errs = append(errs, errors.New("funeral.stale_after: must be positive"))
	}
	return errors.Join(errs...)
}

// SandboxDBFile is the sandbox's SQLite store inside the hub's data
// directory. The sandbox is the same API over this isolated store; the hub
// opens it, and `mzhub conformance --role pusher` reads it.
const SandboxDBFile = "funeral-sandbox.db"
