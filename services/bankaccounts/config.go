package bankaccounts

import (
	"errors"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/config"
)

// ConfigKey is the account files' section key in the hub's configuration file.
const ConfigKey = "accounts"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Accounts configures the banks' account files (核查, 开户, 激活, 挂失, 解挂失, 注销): how long a bank has to answer a request file.",
		Default: func() any { return DefaultConfig() },
	})
}

// DefaultResultDeadline is how long a bank has by default to answer an
// account request file: a day from the upload, so that a file sent in a
// working day is answered by the same time of the next one.
const DefaultResultDeadline = 24 * time.Hour

// Config tunes the account files.
type Config struct {
	// ResultDeadline is how long after a request file is sent its result file is due: a monitor expectation per file, met when the bank's result file is fetched; a missed one shows the bank's operation late on the console's overview and raises the expectation alert.
	ResultDeadline time.Duration `yaml:"result_deadline"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{ResultDeadline: DefaultResultDeadline} }

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.ResultDeadline < time.Minute {
		errs = append(errs, fmt.Errorf("accounts.result_deadline: %s: want at least 1m", c.ResultDeadline))
	}
	return errors.Join(errs...)
}

// ConfigFrom returns the accounts section of the hub's configuration (the
// defaults when cfg holds none).
func ConfigFrom(cfg config.Config) Config {
	c, ok := config.SectionOf[Config](cfg, ConfigKey)
	if !ok {
		c = DefaultConfig()
	}
	return c
}
