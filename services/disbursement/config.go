package disbursement

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/config"
)

// ConfigKey is the disbursement section's key in the hub's configuration file.
const ConfigKey = "disbursement"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Disbursement configures the monthly allowance and quarterly deduction cycles with the partner banks.",
		Default: func() any { return DefaultConfig() },
	})
}

// Config tunes the service. The person-key secret is not here: it is the
// key provider's disbursement-person key, handed to New.
type Config struct {
	// Dir holds the batches' working files (lists, bank files, reports);
	// empty means the disbursement directory under data_dir.
	Dir string `yaml:"dir"`
	// PollEvery is the pause between polls for return files.
	PollEvery time.Duration `yaml:"poll_every"`
	// ReturnWait bounds how long Run waits for return files before the
	// records still open are declared missing; zero uses each bank's return_deadline.
	ReturnWait time.Duration `yaml:"return_wait"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{PollEvery: 2 * time.Second}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.PollEvery <= 0 {
		errs = append(errs, fmt.Errorf("disbursement.poll_every: %s: must be positive", c.PollEvery))
	}
	if c.ReturnWait < 0 {
		errs = append(errs, fmt.Errorf("disbursement.return_wait: %s: must not be negative", c.ReturnWait))
	}
	return errors.Join(errs...)
}

// ResolvePaths makes Dir absolute against base (config.Config.Resolve calls it).
func (c *Config) ResolvePaths(base string) {
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		c.Dir = filepath.Join(base, c.Dir)
	}
}

// ConfigFrom returns the disbursement section of the hub's configuration
// (the defaults when cfg holds none), with an empty Dir set to the
// disbursement directory under cfg's data_dir.
func ConfigFrom(cfg config.Config) Config {
	c, ok := config.SectionOf[Config](cfg, ConfigKey)
	if !ok {
		c = DefaultConfig()
	}
	if c.Dir == "" && cfg.DataDir != "" {
		c.Dir = filepath.Join(cfg.DataDir, "disbursement")
	}
	return c
}
