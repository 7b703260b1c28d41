package portal

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/expr-lang/expr"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/connectors/joblib"
)

// ConfigKey is the portal section's key in the hub's configuration file.
const ConfigKey = "portal"

func init() {
	config.RegisterSection(config.Section{
		Key:     ConfigKey,
		Doc:     "Portal connects the bureau's items to the one-stop portal (一网通办): the job library (办件库) and 免申即享 (docs/portal.md).",
		Default: func() any { return DefaultConfig() },
	})
}

// Payout sources of an item.
const (
	// PayoutNone: the hub reports no payouts for the item.
	PayoutNone = ""
	// PayoutDisbursement: payouts come from the allowance disbursement's reconciled returns.
	PayoutDisbursement = "disbursement"
	// PayoutPaidFile: payouts come from the business system's paid-<ITEM>-<YYYY-MM>.csv files (items paid outside the allowance disbursement, e.g. 重度残疾人护理补贴).
	PayoutPaidFile = "paid_file"
)

// Answers an item's applications can get from the hub itself.
const (
	// AnswerBusiness: the bureau's business system reports the nodes (status files in the inbox).
	AnswerBusiness = ""
	// AnswerRegister: the hub answers from the item's register (救助证明): eligible with a certificate reference, or not with the reason.
	AnswerRegister = "register"
)

// Item is one of the bureau's items on the portal.
type Item struct {
	// Code is the item code (事项编码) as the portal knows it.
	Code string `yaml:"code"`
	// Name is the item's name.
	Name string `yaml:"name"`
	// Mianshen makes the item a 免申即享 item: its newly eligible persons are pushed each month and its cases confirmed.
	Mianshen bool `yaml:"mianshen"`
	// Rule is the qualification rule (an expr-lang expression over age, hukou, status, division, disability_grade, household_size, monthly_income_fen, assistance_type) a person must pass to be confirmed or answered eligible.
	Rule string `yaml:"rule"`
	// RefuseReason is the reason given when Rule fails (shown to the person by the portal).
	RefuseReason string `yaml:"refuse_reason"`
	// Payout is where payouts come from: "" (none), "disbursement" (the allowance cycle's reconciled returns) or "paid_file" (the business system's paid-<ITEM>-<YYYY-MM>.csv files in the inbox).
	Payout string `yaml:"payout"`
	// Answer is "" (the business system reports the nodes) or "register" (the hub answers from the item's register, with a certificate reference).
	Answer string `yaml:"answer"`
	// CertificatePrefix starts the certificate references the hub issues for an Answer register item.
	CertificatePrefix string `yaml:"certificate_prefix"`
}

// Config tunes the portal family. The signing secret is not here: it is the
// key provider's portal key (docs/portal.md).
type Config struct {
	// Enabled turns the portal exchange on (the demo turns it on with its simulator).
	Enabled bool `yaml:"enabled"`
	// Dept is the bureau's department code on the portal (部门编码).
	Dept string `yaml:"dept"`
	// JobLib is the job library's interface.
	JobLib joblib.Endpoint `yaml:"joblib"`
	// Mianshen is the 免申即享 interface.
	Mianshen joblib.Endpoint `yaml:"mianshen"`
	// Every is the pause between rounds: the business system's files taken, pushes and payouts planned, the outbox's batches published for the portal routes (applications, cases and the routes' answers are taken as they arrive; the routes' polling is in configs/routes/portal-feed.template.yaml).
	Every time.Duration `yaml:"every"`
	// SendBatch is how many status nodes, confirmations or payouts one call carries (1..1000).
	SendBatch int `yaml:"send_batch"`
	// PushBatch is how many persons one 免申即享 push carries (1..1000).
	PushBatch int `yaml:"push_batch"`
	// RetryWait is the first back-off after a failed send; it doubles per attempt up to RetryMaxWait.
	RetryWait time.Duration `yaml:"retry_wait"`
	// RetryMaxWait caps the back-off.
	RetryMaxWait time.Duration `yaml:"retry_max_wait"`
	// PushDueDay is the day of the month by which the month's 免申即享 push is due (18:00 Shanghai time); the monitor shows it late after.
	PushDueDay int `yaml:"push_due_day"`
	// RegisterWait is how long an application of an item answered from its register (救助证明) may wait for the item's first register, after which the monitor shows the register missing (red) and raises an alert.
	RegisterWait time.Duration `yaml:"register_wait"`
	// AutoApprove confirms the cases that pass every check without a person (the tender's auto-approval); when off they wait for an operator.
	AutoApprove bool `yaml:"auto_approve"`
	// PayoutMonths is how many allowance months after the case's month are searched for the first payment before the case is closed without a payout.
	PayoutMonths int `yaml:"payout_months"`
	// Inbox receives the business system's files: eligible-<ITEM>-<YYYY-MM>.csv registers and status-*.csv node reports; empty means portal/inbox under data_dir.
	Inbox string `yaml:"inbox"`
	// Items are the bureau's items on the portal.
	Items []Item `yaml:"items"`
}

// DefaultItems are the bureau's items as shipped.
func DefaultItems() []Item {
	return []Item{
		{Code: "MZ-LNZHJT", Name: "老年综合津贴", Mianshen: true, Rule: `age >= 65 && hukou == "shanghai"`,
			RefuseReason: "未满65周岁或非本市户籍，不符合老年综合津贴条件", Payout: PayoutDisbursement},
		{Code: "MZ-ZDCJHL", Name: "重度残疾人护理补贴", Mianshen: true, Rule: `disability_grade in [1, 2] && hukou == "shanghai"`,
			RefuseReason: "非一、二级重度残疾人或非本市户籍", Payout: PayoutPaidFile},
		{Code: "MZ-GZFSQ", Name: "公共租赁住房申请"},
		{Code: "MZ-ZFBT", Name: "廉租住房租金补贴", Rule: `monthly_income_fen <= 420000 * household_size`,
			RefuseReason: "家庭人均月收入超过廉租住房标准"},
		{Code: "MZ-JZZM", Name: "救助证明", Answer: AnswerRegister, CertificatePrefix: "JZZM",
			Rule: `assistance_type in ["dibao", "tekun", "dibian"]`, RefuseReason: "申请人不是本市最低生活保障、特困供养或低收入家庭救助对象"},
	}
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	ep := joblib.Endpoint{ClientConfig: httpx.ClientConfig{Timeout: 10 * time.Second, RatePerSecond: 20, BreakerFailures: 5, BreakerOpen: 30 * time.Second}}
	return Config{
		Dept: "SHMZJ", JobLib: ep, Mianshen: ep, Every: 30 * time.Second, SendBatch: 500, PushBatch: 1000,
		RetryWait: 2 * time.Second, RetryMaxWait: 5 * time.Minute, PushDueDay: 5, RegisterWait: 2 * time.Hour, AutoApprove: true, PayoutMonths: 2,
		Items: DefaultItems(),
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	add := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if c.Dept == "" {
		add("portal.dept: required")
	}
	if err := c.JobLib.Validate("portal.joblib"); err != nil {
		errs = append(errs, err)
	}
	if err := c.Mianshen.Validate("portal.mianshen"); err != nil {
		errs = append(errs, err)
	}
	if c.Enabled && (c.JobLib.BaseURL == "" || c.Mianshen.BaseURL == "") {
		add("portal: enabled needs joblib.base_url and mianshen.base_url")
	}
	if c.Every <= 0 {
		add("portal.every: %s: must be positive", c.Every)
	}
	for k, v := range map[string]int{"send_batch": c.SendBatch, "push_batch": c.PushBatch} {
		if v < 1 || v > 1000 {
			add("portal.%s: %d out of 1..1000", k, v)
		}
	}
	if c.RetryWait <= 0 || c.RetryMaxWait < c.RetryWait {
		add("portal.retry_wait, retry_max_wait: want 0 < retry_wait <= retry_max_wait")
	}
	if c.PushDueDay < 1 || c.PushDueDay > 28 {
		add("portal.push_due_day: %d out of 1..28", c.PushDueDay)
	}
	if c.RegisterWait <= 0 {
		add("portal.register_wait: %s: must be positive", c.RegisterWait)
	}
	if c.PayoutMonths < 0 || c.PayoutMonths > 12 {
		add("portal.payout_months: %d out of 0..12", c.PayoutMonths)
	}
	seen := map[string]bool{}
	for i, it := range c.Items {
		p := fmt.Sprintf("portal.items[%d]", i)
		if !itemCodeRE.MatchString(it.Code) {
			add("%s.code: %q is not an item code", p, it.Code)
		}
		if seen[it.Code] {
			add("%s.code: %s twice", p, it.Code)
		}
		seen[it.Code] = true
		if it.Name == "" {
			add("%s.name: required", p)
		}
		if it.Rule != "" {
			if _, err := expr.Compile(it.Rule, expr.Env(Qualification{}), expr.AsBool()); err != nil {
				add("%s.rule: %v", p, err)
			}
			if it.RefuseReason == "" {
				add("%s.refuse_reason: required with a rule", p)
			}
		}
		if it.Payout != PayoutNone && it.Payout != PayoutDisbursement && it.Payout != PayoutPaidFile {
			add("%s.payout: %q: want \"\", disbursement or paid_file", p, it.Payout)
		}
		if it.Payout != PayoutNone && !it.Mianshen {
			add("%s.payout: only a mianshen item reports payouts", p)
		}
		switch it.Answer {
		case AnswerBusiness:
		case AnswerRegister:
			if it.Rule == "" || it.CertificatePrefix == "" {
				add("%s: answer register needs a rule and a certificate_prefix", p)
			}
		default:
			add("%s.answer: %q: want \"\" or register", p, it.Answer)
		}
	}
	return errors.Join(errs...)
}

// ResolvePaths makes Inbox absolute against base (config.Config.Resolve calls it).
func (c *Config) ResolvePaths(base string) {
	if c.Inbox != "" && !filepath.IsAbs(c.Inbox) {
		c.Inbox = filepath.Join(base, c.Inbox)
	}
}

// ConfigFrom returns the portal section of the hub's configuration (the
// defaults when cfg holds none), with an empty Inbox set to portal/inbox
// under cfg's data_dir.
func ConfigFrom(cfg config.Config) Config {
	c, ok := config.SectionOf[Config](cfg, ConfigKey)
	if !ok {
		c = DefaultConfig()
	}
	if c.Inbox == "" && cfg.DataDir != "" {
		c.Inbox = filepath.Join(cfg.DataDir, "portal", "inbox")
	}
	return c
}
