package dbtable

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"time"
)

// ident is a plain or schema-qualified SQL identifier (lower case, as the
// front-end tables are named in practice; quoted identifiers are not needed).
var ident = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)
var column = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Conn says how to reach the front-end database.
type Conn struct {
	// DSN is the database URL (postgres://user@host:port/db?sslmode=...); prefer dsn_env to keep the password out of files.
	DSN string `yaml:"dsn"`
	// DSNEnv names an environment variable holding the DSN (used when dsn is empty).
	DSNEnv string `yaml:"dsn_env"`
	// MaxConns bounds the connections to the database.
	MaxConns int `yaml:"max_conns"`
	// Timeout bounds one batch (read, hand-over, mark, commit) or one insert.
	Timeout time.Duration `yaml:"timeout"`
}

func (c Conn) dsn() string {
	if c.DSN != "" {
		return c.DSN
	}
	return os.Getenv(c.DSNEnv)
}

func (c Conn) validate() []error {
	var errs []error
	switch {
	case c.DSN == "" && c.DSNEnv == "":
		errs = append(errs, errors.New("dsn or dsn_env: required"))
	case c.DSN != "":
		if u, err := url.Parse(c.DSN); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("dsn: not a postgres:// URL"))
		}
	}
	if c.MaxConns < 1 {
		errs = append(errs, errors.New("max_conns: must be positive"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	return errs
}

// SourceConfig configures a dbtable source.
type SourceConfig struct {
	// Conn is the front-end database.
	Conn `yaml:",inline"`
	// Table is the table rows are taken from (optionally schema.table).
	Table string `yaml:"table"`
	// IDColumn is the row's unique id; the idempotency key is table/id.
	IDColumn string `yaml:"id_column"`
	// WatermarkColumn orders the rows (a sequence or a load timestamp); rows are taken in (watermark, id) order after the stored watermark.
	WatermarkColumn string `yaml:"watermark_column"`
	// TakenColumn, when set, is a nullable column the source sets to the hand-over time (the platform sees what was taken); rows with it set are skipped.
	TakenColumn string `yaml:"taken_column"`
	// Columns lists the columns carried in the message body (a JSON object); empty means all.
	Columns []string `yaml:"columns"`
	// KeyColumn, when set, gives the message's ordering key (e.g. the person's id column).
	KeyColumn string `yaml:"key_column"`
	// BatchSize is the number of rows handed over per transaction.
	BatchSize int `yaml:"batch_size"`
	// Interval is the pause after a poll that found no rows.
	Interval time.Duration `yaml:"interval"`
	// StateTable is the table in the front-end database that keeps each source's watermark (created when missing).
	StateTable string `yaml:"state_table"`
	// Partner names the partner in monitor events (e.g. datasea).
	Partner string `yaml:"partner"`
	// Flow names the business flow in monitor events (e.g. death).
	Flow string `yaml:"flow"`
}

// DefaultSourceConfig returns the defaults.
func DefaultSourceConfig() *SourceConfig {
	return &SourceConfig{Conn: Conn{MaxConns: 4, Timeout: 30 * time.Second}, IDColumn: "id", BatchSize: 500,
		Interval: 30 * time.Second, StateTable: "mzhub_dbtable_state"}
}

// Validate reports every problem at once. It does no I/O.
func (c *SourceConfig) Validate() error {
	errs := c.Conn.validate()
	if !ident.MatchString(c.Table) {
		errs = append(errs, fmt.Errorf("table: %q is not a (schema.)table name", c.Table))
	}
	if !ident.MatchString(c.StateTable) {
		errs = append(errs, fmt.Errorf("state_table: %q is not a (schema.)table name", c.StateTable))
	}
	for k, v := range map[string]string{"id_column": c.IDColumn, "watermark_column": c.WatermarkColumn} {
		if !column.MatchString(v) {
			errs = append(errs, fmt.Errorf("%s: %q is not a column name", k, v))
		}
	}
	for k, v := range map[string]string{"taken_column": c.TakenColumn, "key_column": c.KeyColumn} {
		if v != "" && !column.MatchString(v) {
			errs = append(errs, fmt.Errorf("%s: %q is not a column name", k, v))
		}
	}
	for _, v := range c.Columns {
		if !column.MatchString(v) {
			errs = append(errs, fmt.Errorf("columns: %q is not a column name", v))
		}
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("batch_size: %d out of 1..10000", c.BatchSize))
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("interval: must be positive"))
	}
	if c.Partner == "" {
		errs = append(errs, errors.New("partner: required"))
	}
	return errors.Join(errs...)
}

// SinkConfig configures a dbtable sink.
type SinkConfig struct {
	// Conn is the front-end database.
	Conn `yaml:",inline"`
	// Table is the answer table rows are written to.
	Table string `yaml:"table"`
	// KeyColumn receives the message's idempotency key; it must carry a unique constraint (the insert is ON CONFLICT DO NOTHING on it).
	KeyColumn string `yaml:"key_column"`
	// Columns lists the body fields written, each to the column of the same name; a field missing from the body writes NULL.
	Columns []string `yaml:"columns"`
}

// DefaultSinkConfig returns the defaults.
func DefaultSinkConfig() *SinkConfig {
	return &SinkConfig{Conn: Conn{MaxConns: 4, Timeout: 30 * time.Second}, KeyColumn: "mzhub_key"}
}

// Validate reports every problem at once. It does no I/O.
func (c *SinkConfig) Validate() error {
	errs := c.Conn.validate()
	if !ident.MatchString(c.Table) {
		errs = append(errs, fmt.Errorf("table: %q is not a (schema.)table name", c.Table))
	}
	if !column.MatchString(c.KeyColumn) {
		errs = append(errs, fmt.Errorf("key_column: %q is not a column name", c.KeyColumn))
	}
	if len(c.Columns) == 0 {
		errs = append(errs, errors.New("columns: at least one"))
	}
	for _, v := range c.Columns {
		if !column.MatchString(v) || v == c.KeyColumn {
			errs = append(errs, fmt.Errorf("columns: %q is not a column name other than key_column", v))
		}
	}
	return errors.Join(errs...)
}
