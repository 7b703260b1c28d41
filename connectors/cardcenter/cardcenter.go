package cardcenter

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/store"
)

// Partner is the card center's partner id in monitor events.
const Partner = "cardcenter"

// ConfigKey is the card center section's key in the hub's configuration file.
const ConfigKey = "cardcenter"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Cardcenter configures the exchange with the card center (卡中心): 敬老卡 and 社保卡 一卡通 applications, card production progress and card-status queries.",
		Default: func() any { return DefaultConfig() },
	})
}

// Config configures the card center connector.
type Config struct {
	// URL is the base URL of the card center's API; empty turns the connector off (the cardcenter routes stay idle, card status is not asked).
	URL string `yaml:"url"`
	// Client is the API transport: deadline, retries, rate limit, circuit breaker, headers.
	Client httpx.ClientConfig `yaml:"client"`
	// StatusBatch is the number of ID numbers per card-status query (the card center's limit).
	StatusBatch int `yaml:"status_batch"`
	// StatusParallel is the number of card-status queries in flight at once.
	StatusParallel int `yaml:"status_parallel"`
	// BankTypes is the card center's bank-type dictionary (a code table), relative to paths.mappings.
	BankTypes string `yaml:"bank_types"`
	// CheckStatus makes the allowance screening ask every person's card status before a list is cut (lost, frozen and cancelled cards are not paid).
	CheckStatus bool `yaml:"check_status"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Client: httpx.ClientConfig{Timeout: 30 * time.Second, Retries: 2, RetryWait: 500 * time.Millisecond,
		RetryMaxWait: 5 * time.Second, RatePerSecond: 50, BreakerFailures: 5, BreakerOpen: time.Minute, MaxConns: 16},
		StatusBatch: 1000, StatusParallel: 8, CheckStatus: true, BankTypes: DefaultBankTypes}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("cardcenter.url: %q is not an http(s) URL", c.URL))
		}
	}
	if c.StatusBatch < 1 || c.StatusBatch > 10000 {
		errs = append(errs, fmt.Errorf("cardcenter.status_batch: %d out of 1..10000", c.StatusBatch))
	}
	if c.BankTypes == "" {
		errs = append(errs, errors.New("cardcenter.bank_types: the bank-type dictionary is required"))
	}
	if c.StatusParallel < 1 || c.StatusParallel > 64 {
		errs = append(errs, fmt.Errorf("cardcenter.status_parallel: %d out of 1..64", c.StatusParallel))
	}
	return errors.Join(errs...)
}

// ConfigFrom returns the card center section of the hub's configuration.
func ConfigFrom(cfg config.Config) Config {
	c, ok := config.SectionOf[Config](cfg, ConfigKey)
	if !ok {
		c = DefaultConfig()
	}
	return c
}

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the connector's schema (feed cursors).
func Migrate(ctx context.Context, db *store.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return db.Migrate(ctx, "cardcenter", sub)
}

// Card types.
const (
	// SeniorCard is the 敬老卡.
	SeniorCard = "senior"
	// SocialSecurityCard is the 社保卡 (一卡通).
	SocialSecurityCard = "sscard"
)

// Application is one card application (申领).
type Application struct {
	// ID is the card center's application id.
	ID string `json:"app_id"`
	// IDNumber and Name of the applicant.
	IDNumber string `json:"id_number"`
	Name     string `json:"name"`
	// CardType is senior (敬老卡) or sscard (社保卡).
	CardType string `json:"card_type"`
	// Channel is where the application was made (window, online, sscard, community, …).
	Channel string `json:"channel"`
	// Yikatong is true when the allowance goes to the social-security card's bank account (一卡通).
	Yikatong bool `json:"yikatong"`
	// AppliedOn is the application date, YYYY-MM-DD.
	AppliedOn string `json:"applied_on"`
	// District is the division code.
	District string `json:"district"`
	// BankCode is the card center's bank-type code of the bank behind the
	// card (dictionary cardcenter-bank-types, e.g. "104"); required for 一卡通.
	BankCode string `json:"bank_code,omitempty"`
	// Account is the card's bank account number (一卡通: where the allowance
	// is paid); required for 一卡通. Never logged or shown whole.
	Account string `json:"account,omitempty"`
	// Bank is the partner bank (connector code) of BankCode, set by Check.
	Bank string `json:"-"`
}

// maxAccount is the longest account number a bank file's account field holds.
const maxAccount = 32

// validAccount reports whether s looks like a bank account number: 12 to
// 32 digits. The Luhn check is not asked: not every bank's account numbers
// carry it (the mappings engine reports it as a warning on card fields).
func validAccount(s string) bool {
	if len(s) < 12 || len(s) > maxAccount {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Check reports why an application cannot be applied (nil when it can)
// and resolves its bank: a bank code must be in the bank-type dictionary
// banks; a 一卡通 application must be of a social-security card and carry
// its bank code and account.
func (a *Application) Check(now time.Time, banks *BankTypes) error {
	var why []string
	if strings.TrimSpace(a.ID) == "" || len(a.ID) > 64 {
		why = append(why, "application id missing or longer than 64")
	}
	if !mask.ValidID(a.IDNumber) {
		why = append(why, "id number "+mask.IDNumber(a.IDNumber)+" fails its check digit or format")
	}
	if a.CardType != SeniorCard && a.CardType != SocialSecurityCard {
		why = append(why, fmt.Sprintf("card_type %q is not senior or sscard", a.CardType))
	}
	if a.Channel == "" {
		why = append(why, "channel missing")
	}
	a.Bank = ""
	if a.BankCode != "" {
		if bank, _, ok := banks.Bank(a.BankCode); ok {
			a.Bank = bank
		} else {
			why = append(why, fmt.Sprintf("bank_code %q is not in the card center's bank-type dictionary (%s)", clip(a.BankCode), banks.Name()))
		}
	}
	if a.Account != "" && !validAccount(a.Account) {
		why = append(why, "account "+mask.Account(a.Account)+" is not 12 to 32 digits")
	}
	if a.Yikatong {
		if a.CardType != SocialSecurityCard {
			why = append(why, "一卡通 on a card that is not a social-security card")
		}
		if a.BankCode == "" {
			why = append(why, "一卡通 without the card's bank_code")
		}
		if a.Account == "" {
			why = append(why, "一卡通 without the card's account")
		}
	}
	if d, err := time.ParseInLocation(time.DateOnly, a.AppliedOn, clock.Shanghai); err != nil || d.After(now) {
		why = append(why, fmt.Sprintf("applied_on %q is not a past date", a.AppliedOn))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrMalformed, strings.Join(why, "; "))
}

// clip keeps a partner's code short in a reason.
func clip(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// Progress is one step of card production (制卡).
type Progress struct {
	// ID is the application id.
	ID string `json:"app_id"`
	// Stage is accepted, produced or issued.
	Stage string `json:"stage"`
	// At is when, RFC 3339.
	At string `json:"at"`
}

// Bad is an application or progress record quarantined instead of applied.
type Bad struct {
	// Ref says where it came from; RecordID the id when known; Reason what is wrong.
	Ref, RecordID, Reason string
}

// Applier applies applications and production progress idempotently by
// application id (services/allowance).
type Applier interface {
	// ApplyApplications stores the applications (a known id changes
	// nothing) and quarantines bad with their reasons.
	ApplyApplications(ctx context.Context, apps []Application, bad []Bad) (int, error)
	// ApplyProgress moves known applications forward; a step of an
	// application not stored yet is skipped (ask KnownApplication first).
	ApplyProgress(ctx context.Context, steps []Progress) (int, error)
	// KnownApplication reports whether the application id is stored.
	KnownApplication(ctx context.Context, id string) (bool, error)
}

// Sentinel errors.
var (
	// ErrMalformed marks a record that cannot be applied.
	ErrMalformed = errors.New("cardcenter: malformed record")
	// ErrBadAnswer is an answer that is not what the API promises.
	ErrBadAnswer = errors.New("cardcenter: bad answer")
	// ErrNotConfigured is the hub's answer for the card center's client
	// when cardcenter.url is not set.
	ErrNotConfigured = errors.New("cardcenter: not configured (cardcenter.url is not set)")
)
