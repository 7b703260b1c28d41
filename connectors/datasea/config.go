package datasea

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
)

// ConfigKey is the data sea section's key in the hub's configuration file.
const ConfigKey = "datasea"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Datasea configures the exchange with the data sea (数据海): the daily pull of death and move records, the SFTP batch files and the monthly push of the recipients list (入海).",
		Default: func() any { return DefaultConfig() },
	})
}

// Config configures the data sea connector.
type Config struct {
	// URL is the base URL of the exchange-sharing platform's API; empty turns the API pull routes (datasea-death, datasea-migration) and the push off.
	URL string `yaml:"url"`
	// Client is the API transport: deadline, retries, rate limit, circuit breaker, headers (the platform's app key).
	Client httpx.ClientConfig `yaml:"client"`
	// PageSize is the number of records asked for per page.
	PageSize int `yaml:"page_size"`
	// MaxPages bounds the pages of one feed in one pull (a runaway cursor stops here).
	MaxPages int `yaml:"max_pages"`
	// PullAt is the daily time (HH:MM, Asia/Shanghai) the pull starts.
	PullAt string `yaml:"pull_at"`
	// DueBy is the daily time (HH:MM, Asia/Shanghai) by which the pull must have succeeded (a monitor expectation).
	DueBy string `yaml:"due_by"`
	// RetryEvery is the pause before a failed pull is tried again.
	RetryEvery time.Duration `yaml:"retry_every"`
	// SFTP, when set, is the platform's SFTP drop of batch files (DEATH_*.txt, MIGRATION_*.txt with done files), polled by the route datasea-files (configs/routes/datasea-files.yaml); unset, that route is not started.
	SFTP *sftp.Config `yaml:"sftp"`
	// SFTPEvery is the pause between polls of the SFTP drop (route datasea-files).
	SFTPEvery time.Duration `yaml:"sftp_every"`
	// Push turns the monthly push of the recipients list (入海) on: each allowance batch, once done, is pushed.
	Push bool `yaml:"push"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Client: httpx.ClientConfig{Timeout: 30 * time.Second, Retries: 2, RetryWait: 500 * time.Millisecond,
		RetryMaxWait: 5 * time.Second, RatePerSecond: 20, BreakerFailures: 5, BreakerOpen: time.Minute, MaxConns: 8},
		PageSize: 500, MaxPages: 10000, PullAt: "05:00", DueBy: "06:00", RetryEvery: 10 * time.Minute,
		SFTPEvery: 5 * time.Minute, Push: true}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("datasea.url: %q is not an http(s) URL", c.URL))
		}
	}
	if c.PageSize < 1 || c.PageSize > 10000 {
		errs = append(errs, fmt.Errorf("datasea.page_size: %d out of 1..10000", c.PageSize))
	}
	if c.MaxPages < 1 {
		errs = append(errs, errors.New("datasea.max_pages: must be positive"))
	}
	for k, v := range map[string]string{"pull_at": c.PullAt, "due_by": c.DueBy} {
		if _, _, err := ParseClock(v); err != nil {
			errs = append(errs, fmt.Errorf("datasea.%s: %w", k, err))
		}
	}
	if c.RetryEvery <= 0 || c.SFTPEvery <= 0 {
		errs = append(errs, errors.New("datasea.retry_every and datasea.sftp_every: must be positive"))
	}
	if c.SFTP != nil {
		if err := c.SFTP.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("datasea.sftp: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ParseClock parses HH:MM.
func ParseClock(s string) (h, m int, err error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour(), t.Minute(), nil
}

// ConfigFrom returns the data sea section of the hub's configuration (the
// defaults when cfg holds none).
func ConfigFrom(cfg config.Config) Config {
	c, ok := config.SectionOf[Config](cfg, ConfigKey)
	if !ok {
		c = DefaultConfig()
	}
	return c
}
