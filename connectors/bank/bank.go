package bank

import (
	"errors"
	"fmt"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
)

// Bank is one configured bank: its config, layouts and SFTP client.
type Bank struct {
	// Config is the bank's configuration.
	Config Config
	// Files are the compiled layouts.
	Files FileSet
	// SFTP is the transport to the bank; nil when it could not be built.
	SFTP *sftp.Client
	// Unavailable says why SFTP is nil (a missing key file, a bad host
	// key): the hub starts anyway, and a cycle that needs this bank stops
	// at its upload with this cause.
	Unavailable error
}

// Transport returns the bank's SFTP client, or an error naming why the
// bank cannot be reached.
func (b *Bank) Transport() (*sftp.Client, error) {
	if b.SFTP != nil {
		return b.SFTP, nil
	}
	cause := b.Unavailable
	if cause == nil {
		cause = errors.New("no transport configured")
	}
	return nil, fmt.Errorf("bank %s: %w: %w", b.Config.Code, ErrUnavailable, cause)
}

// ErrUnavailable: the bank's transport could not be built.
var ErrUnavailable = errors.New("SFTP transport unavailable")

// New connects the pieces of a bank (no I/O beyond reading keys): the
// layouts come from files, deps.Store must be migrated with sftp.Migrate.
func New(cfg Config, files FileSet, deps connectors.Deps, flow string, keys sftp.Keys) (*Bank, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if files.Disbursement == nil || files.Return == nil {
		return nil, fmt.Errorf("bank %s: disbursement and return layouts are required", cfg.Code)
	}
	c, err := sftp.New(cfg.Partner(), flow, cfg.SFTP, deps, keys)
	if err != nil {
		return nil, err
	}
	return &Bank{Config: cfg, Files: files, SFTP: c}, nil
}
