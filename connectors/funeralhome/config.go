package funeralhome

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config configures the hub's calls to one funeral home's booking API.
type Config struct {
	// Partner is the home's partner id (funeral.fhNN).
	Partner string `yaml:"partner"`
	// BaseURL is the home's booking API base (…/booking/v1 is appended).
	BaseURL string `yaml:"base_url"`
	// KeyID names the key the hub signs with (key provider name partner/<key_id>).
	KeyID string `yaml:"key_id"`
	// KeyDir is the file key provider's directory.
	KeyDir string `yaml:"key_dir"`
	// Timeout bounds each call (the spec promises partners 5 s).
	Timeout time.Duration `yaml:"timeout"`
	// RatePerSecond caps calls to the home.
	RatePerSecond float64 `yaml:"rate_per_second"`
	// BreakerFailures consecutive failures open the circuit breaker.
	BreakerFailures uint32 `yaml:"breaker_failures"`
	// BreakerOpen is how long the breaker stays open before a trial call.
	BreakerOpen time.Duration `yaml:"breaker_open"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{KeyDir: "data/keys", Timeout: 5 * time.Second, RatePerSecond: 20, BreakerFailures: 5, BreakerOpen: 30 * time.Second}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.Partner == "" {
		errs = append(errs, errors.New("funeral.partner: required"))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("funeral.base_url: %q: want an http(s) URL", c.BaseURL))
	}
	if c.KeyID == "" {
		errs = append(errs, errors.New("funeral.key_id: required"))
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		errs = append(errs, fmt.Errorf("funeral.timeout: %s: want (0, 1m]", c.Timeout))
	}
	if c.RatePerSecond <= 0 {
		errs = append(errs, errors.New("funeral.rate_per_second: must be positive"))
	}
	if c.BreakerFailures < 1 {
		errs = append(errs, errors.New("funeral.breaker_failures: at least 1"))
	}
	return errors.Join(errs...)
}
