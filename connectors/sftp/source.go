package sftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
)

func init() {
	connectors.Register(connectors.Spec{
		Name:    "sftp",
		Summary: "poll a partner's SFTP folder; each complete file (done file or stable size, claimed once in the ledger) becomes one message",
		Source: &connectors.SourceSpec{
			NewConfig: func() any {
				c := DefaultSourceConfig()
				return &c
			},
			New: func(cfg any, deps connectors.Deps) (connectors.Source, error) {
				c, ok := cfg.(*SourceConfig)
				if !ok {
					return nil, fmt.Errorf("sftp source: config is %T, want *SourceConfig", cfg)
				}
				return NewSource(*c, deps)
			},
		},
	})
}

// SourceConfig configures the sftp route source: the transport settings of
// Config plus what identifies the exchange.
type SourceConfig struct {
	// Config is the SFTP endpoint, host-key pinning, folders and pick rules.
	Config `yaml:",inline"`
	// Partner is the partner id in events and claims (e.g. bank.boc).
	Partner string `yaml:"partner"`
	// Flow names the business flow in events.
	Flow string `yaml:"flow"`
	// Interval is the pause between poll passes.
	Interval time.Duration `yaml:"interval"`
	// MaxFileBytes refuses (moves to failed/) a file larger than this; a
	// whole file travels as one message.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
}

// DefaultSourceConfig returns the defaults.
func DefaultSourceConfig() SourceConfig {
	return SourceConfig{Config: DefaultConfig(), Interval: 30 * time.Second, MaxFileBytes: 256 << 20}
}

// Validate reports every problem at once. It does no I/O.
func (c SourceConfig) Validate() error {
	var errs []error
	if err := c.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Partner == "" {
		errs = append(errs, errors.New("partner: required"))
	}
	if c.Interval <= 0 {
		errs = append(errs, errors.New("interval: must be positive"))
	}
	if c.MaxFileBytes <= 0 {
		errs = append(errs, errors.New("max_file_bytes: must be positive"))
	}
	return errors.Join(errs...)
}

// Source polls an SFTP folder and emits each complete inbound file as one
// message. The file is moved to processed/ only after the message is
// durably on the bus (emit returned nil); when emit fails the claim stays
// and the file is handed over again on the next pass, so nothing is lost,
// and the ledger keeps a file from being emitted twice once processed.
type Source struct {
	cfg    SourceConfig
	deps   connectors.Deps
	client *Client
}

var _ connectors.Source = (*Source)(nil)

// NewSource builds the source; it connects lazily on the first poll.
func NewSource(cfg SourceConfig, deps connectors.Deps) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sftp source %s: %w", cfg.Partner, err)
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("sftp source %s: the claim ledger needs the state store", cfg.Partner)
	}
	c, err := New(cfg.Partner, cfg.Flow, cfg.Config, deps, Keys{})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, deps: deps, client: c}, nil
}

// Run polls until ctx is done.
func (s *Source) Run(ctx context.Context, emit connectors.Emit) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.client.Close(cctx)
	}()
	if err := Migrate(ctx, s.deps.Store); err != nil {
		return fmt.Errorf("sftp source %s: %w", s.cfg.Partner, err)
	}
	return s.client.Run(ctx, s.cfg.Interval, PollOptions{}, func(ctx context.Context, f Inbound) error {
		return s.handle(ctx, f, emit)
	})
}

func (s *Source) handle(ctx context.Context, f Inbound, emit connectors.Emit) error {
	if f.Bytes > s.cfg.MaxFileBytes {
		return fmt.Errorf("sftp source %s: %s is %d bytes, over max_file_bytes %d", s.cfg.Partner, filepath.Base(f.RemotePath), f.Bytes, s.cfg.MaxFileBytes)
	}
	body, err := os.ReadFile(f.LocalPath)
	if err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrRetry, f.LocalPath, err)
	}
	name := filepath.Base(f.RemotePath)
	headers := map[string]string{
		"file-name":    name,
		"mzhub-digest": f.Digest,
		"mzhub-bytes":  strconv.FormatInt(f.Bytes, 10),
		"mzhub-source": "sftp",
	}
	if f.Done != nil {
		headers["mzhub-records"] = strconv.FormatInt(f.Done.Records, 10)
		headers["mzhub-amount-fen"] = strconv.FormatInt(f.Done.TotalFen, 10)
	}
	msg := connectors.Message{
		Key:            s.cfg.Partner,
		IdempotencyKey: s.cfg.Partner + "/" + name + "/" + f.Digest,
		Headers:        headers,
		Body:           body,
	}
	if err := emit(ctx, msg); err != nil {
		return fmt.Errorf("%w: emit %s: %w", ErrRetry, name, err)
	}
	return nil
}
