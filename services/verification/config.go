package verification

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
)

// ConfigKey is the verification section's key in the hub's configuration file.
const ConfigKey = "verification"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Verification configures the household economic-status verification exchange (居民经济状况核对): its partners, deadlines, data-quality rules and reports.",
		Default: func() any { return DefaultConfig() },
	})
}

// ConfigFrom returns the verification section of the hub's configuration,
// or the defaults when cfg holds none.
func ConfigFrom(cfg config.Config) Config {
	if c, ok := config.SectionOf[Config](cfg, ConfigKey); ok {
		return c
	}
	return DefaultConfig()
}

// ResolvePaths makes the section's relative paths absolute against base.
func (c *Config) ResolvePaths(base string) {
	for _, p := range []*string{&c.ReportDir, &c.VillageBanks} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
}

// Endpoint is how the hub reaches one partner.
type Endpoint struct {
	// URL is the partner's endpoint (empty: the partner is not wired).
	URL string `yaml:"url"`
	// Username is the WS-Security user (SOAP partners), the app key (market
	// supervision) or the node id (ministry platform).
	Username string `yaml:"username"`
	// PasswordKey names the key provider's secret of the WS-Security token.
	PasswordKey string `yaml:"password_key"`
	// Transport is the deadline, rate limit and circuit breaker of each call.
	Transport httpx.ClientConfig `yaml:"transport"`
}

// Config tunes the verification service.
type Config struct {
	// HRSS is social security (人社), a SOAP 1.1 WebService.
	HRSS Endpoint `yaml:"hrss"`
	// HRSSVia is how social security is reached: soap (the WebService at hrss.url, route verification-hrss) or frontend (the exchange-sharing platform's front-end tables through the routes of docs/examples/routes/verification-hrss-frontend-*.yaml; hrss.url is not used and the SOAP route is held back).
	HRSSVia string `yaml:"hrss_via"`
	// HPF is the housing provident fund (公积金), a SOAP 1.2 WebService.
	HPF Endpoint `yaml:"hpf"`
	// SAMR is market supervision (市场监管), REST.
	SAMR Endpoint `yaml:"samr"`
	// Ministry is the ministry's data security exchange platform, REST, asynchronous.
	Ministry Endpoint `yaml:"ministry"`
	// VillageBanks is the village banks' template and instances file (empty: none wired).
	VillageBanks string `yaml:"village_banks"`
	// Deadline is how long an in-city partner has to answer a request.
	Deadline time.Duration `yaml:"deadline"`
	// CrossProvinceDeadline is how long another province has to answer through the ministry platform.
	CrossProvinceDeadline time.Duration `yaml:"cross_province_deadline"`
	// PollEvery is how often a cross-province query waiting for its answer is polled.
	PollEvery time.Duration `yaml:"poll_every"`
	// RetryWait is the first wait before a failed call is retried; it doubles up to a minute.
	RetryWait time.Duration `yaml:"retry_wait"`
	// Concurrency is how many calls to one partner run at once.
	Concurrency int `yaml:"concurrency"`
	// Tick is how often each partner's outbox is looked at when nothing wakes it.
	Tick time.Duration `yaml:"tick"`
	// SampleRate is the share of accepted answers set aside for manual review (抽检) before acceptance, 0..1.
	SampleRate float64 `yaml:"sample_rate"`
	// MaxDataAge rejects answers whose data is older (timeliness).
	MaxDataAge time.Duration `yaml:"max_data_age"`
	// SlowShare flags an answer as slow when it came after this share of its deadline, 0..1.
	SlowShare float64 `yaml:"slow_share"`
	// AlertRatio raises an alert when a partner's share of bad outcomes (rejected or late) over the last AlertWindow calls passes it.
	AlertRatio float64 `yaml:"alert_ratio"`
	// AlertWindow is the number of recent calls per partner the alert ratio is taken over.
	AlertWindow int `yaml:"alert_window"`
	// ReportEvery is how often the data-quality report file is written (0: never).
	ReportEvery time.Duration `yaml:"report_every"`
	// ReportDir receives the report files; empty means verification/reports under data_dir.
	ReportDir string `yaml:"report_dir"`
	// InboundEvery is how often answers due to other provinces are looked for and published for their return (the route verification-ministry-inbound pulls the requests at its own pace).
	InboundEvery time.Duration `yaml:"inbound_every"`
}

// Ways of reaching social security (Config.HRSSVia).
const (
	HRSSViaSOAP     = "soap"
	HRSSViaFrontEnd = "frontend"
)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		HRSSVia:               HRSSViaSOAP,
		Deadline:              10 * time.Minute,
		CrossProvinceDeadline: 72 * time.Hour,
		PollEvery:             5 * time.Minute,
		RetryWait:             2 * time.Second,
		Concurrency:           8,
		Tick:                  time.Second,
		SampleRate:            0.02,
		MaxDataAge:            45 * 24 * time.Hour,
		SlowShare:             0.5,
		AlertRatio:            0.2,
		AlertWindow:           50,
		ReportEvery:           24 * time.Hour,
		InboundEvery:          30 * time.Second,
	}
}

// Validate reports every problem; it does no I/O.
func (c Config) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"deadline": c.Deadline, "cross_province_deadline": c.CrossProvinceDeadline,
		"poll_every": c.PollEvery, "retry_wait": c.RetryWait, "tick": c.Tick, "inbound_every": c.InboundEvery} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", name))
		}
	}
	if c.ReportEvery < 0 || c.MaxDataAge < 0 {
		errs = append(errs, errors.New("report_every, max_data_age: must not be negative"))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("concurrency: %d out of 1..256", c.Concurrency))
	}
	for name, v := range map[string]float64{"sample_rate": c.SampleRate, "slow_share": c.SlowShare, "alert_ratio": c.AlertRatio} {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s: %v out of 0..1", name, v))
		}
	}
	if c.HRSSVia != "" && c.HRSSVia != HRSSViaSOAP && c.HRSSVia != HRSSViaFrontEnd {
		errs = append(errs, fmt.Errorf("hrss_via: %q is neither %s nor %s", c.HRSSVia, HRSSViaSOAP, HRSSViaFrontEnd))
	}
	if c.AlertWindow < 1 {
		errs = append(errs, errors.New("alert_window: must be at least 1"))
	}
	return errors.Join(errs...)
}
