package bank

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/connectors/sftp"
)

// Kind is a file flow with a bank.
type Kind string

// The file flows.
const (
	// Disbursement is the monthly allowance payment (代发).
	Disbursement Kind = "disbursement"
	// Deduction is the quarterly deduction (代扣).
	Deduction Kind = "deduction"
)

// Layouts names the layout files (relative to the mappings root, e.g.
// banks/boc-disbursement.yaml) of a bank's four file kinds.
type Layouts struct {
	// Disbursement is the layout of the disbursement file the hub sends.
	Disbursement string `yaml:"disbursement"`
	// Return is the layout of the bank's disbursement return file.
	Return string `yaml:"return"`
	// Deduction is the layout of the deduction file the hub sends.
	Deduction string `yaml:"deduction"`
	// DeductionReturn is the layout of the bank's deduction return file.
	DeductionReturn string `yaml:"deduction_return"`
	// Account is the layout of the account-operation request files the hub
	// sends (核查, 开户, 激活, 挂失, 解挂失, 注销); empty when the bank takes none.
	Account string `yaml:"account"`
	// AccountReturn is the layout of the bank's account-operation result files.
	AccountReturn string `yaml:"account_return"`
}

// Config configures one bank.
type Config struct {
	// Code is the short id (boc, bocom, ceb, cmb, spdb, ccb); the partner id is bank.<code>.
	Code string `yaml:"code"`
	// Name is the bank's name for people.
	Name string `yaml:"name"`
	// BankCode is the CNAPS bank type code (code table bank-codes), e.g. "104".
	BankCode string `yaml:"bank_code"`
	// SFTP is the bank's endpoint; upload_dir receives our files, poll_dir holds its returns.
	SFTP sftp.Config `yaml:"sftp"`
	// FileName is the pattern of outbound file names; {bank}, {kind} (DF/DK),
	// {period} (YYYYMM) and {ext} are replaced.
	FileName string `yaml:"file_name"`
	// Layouts names the layouts of the four file kinds.
	Layouts Layouts `yaml:"layouts"`
	// PayerAccount is the bureau's account at the bank (header of outbound files).
	PayerAccount string `yaml:"payer_account"`
	// PayerName is the bureau's account name at the bank.
	PayerName string `yaml:"payer_name"`
	// ScheduleDay is the day of the month (Asia/Shanghai) files go out: the
	// batch's file to this bank is expected by 18:00 that day (a monitor
	// expectation registered once the list is in).
	ScheduleDay int `yaml:"schedule_day"`
	// ReturnDeadline is how long after upload the return files are due (an
	// expectation in the monitor; records still open then are missing).
	ReturnDeadline time.Duration `yaml:"return_deadline"`
	// MultiPartReturns says the bank may split a return over several files
	// (CCB), each carrying its part number and the number of parts.
	MultiPartReturns bool `yaml:"multi_part_returns"`
}

// DefaultConfig returns the defaults of a bank.
func DefaultConfig() Config {
	s := sftp.DefaultConfig()
	s.UploadDir = "upload"
	s.PollDir = "download"
	return Config{
		SFTP:           s,
		FileName:       "{bank}_{kind}_{period}{ext}",
		ScheduleDay:    5,
		ReturnDeadline: 48 * time.Hour,
	}
}

// Partner is the partner id of the bank ("bank.boc").
func (c Config) Partner() string { return "bank." + c.Code }

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	if c.Code == "" || strings.ToLower(c.Code) != c.Code {
		errs = append(errs, fmt.Errorf("code: %q: want a lower-case id", c.Code))
	}
	if c.BankCode == "" {
		errs = append(errs, errors.New("bank_code: required"))
	}
	if err := c.SFTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sftp: %w", err))
	}
	if !strings.Contains(c.FileName, "{period}") || !strings.Contains(c.FileName, "{kind}") {
		errs = append(errs, fmt.Errorf("file_name: %q: must contain {kind} and {period}", c.FileName))
	}
	if c.Layouts.Disbursement == "" || c.Layouts.Return == "" {
		errs = append(errs, errors.New("layouts: disbursement and return are required"))
	}
	if (c.Layouts.Account == "") != (c.Layouts.AccountReturn == "") {
		errs = append(errs, errors.New("layouts: account and account_return go together"))
	}
	if c.ScheduleDay < 1 || c.ScheduleDay > 28 {
		errs = append(errs, fmt.Errorf("schedule_day: %d: want 1-28", c.ScheduleDay))
	}
	if c.ReturnDeadline <= 0 {
		errs = append(errs, errors.New("return_deadline: must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bank %s: %w", c.Code, err)
	}
	return nil
}

// FileNameFor returns the outbound file name of a kind and period ("2026-11").
func (c Config) FileNameFor(k Kind, period, ext string) string {
	kind := "DF"
	if k == Deduction {
		kind = "DK"
	} else if op, ok := opOfKind(k); ok {
		kind = op.FileCode()
	}
	r := strings.NewReplacer("{bank}", strings.ToUpper(c.Code), "{kind}", kind,
		"{period}", strings.ReplaceAll(period, "-", ""), "{ext}", ext)
	return r.Replace(c.FileName)
}

// DecodeConfig decodes one bank's YAML strictly over the defaults.
func DecodeConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// LoadConfigs reads every *.yaml in dir, sorted by code.
func LoadConfigs(dir string) ([]Config, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []Config
	var errs []error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := DecodeConfig(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out, errors.Join(errs...)
}
