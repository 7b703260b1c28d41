package security

import (
	"errors"
	"fmt"
)

// Config configures keys and access control.
type Config struct {
	// KeyProvider is where keys come from: "file" (KeyDir) or "env" (MZHUB_KEY_* variables).
	KeyProvider string `yaml:"key_provider"`
	// KeyDir holds key files for the file provider; demo keys are generated here on first run.
	KeyDir string `yaml:"key_dir"`
}

// DefaultConfig returns the embedded-profile defaults.
func DefaultConfig() Config {
	return Config{KeyProvider: "file", KeyDir: "data/keys"}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	switch c.KeyProvider {
	case "file":
		if c.KeyDir == "" {
			errs = append(errs, errors.New("security.key_dir: required for key_provider file"))
		}
	case "env":
	default:
		errs = append(errs, fmt.Errorf("security.key_provider: %q: want file or env", c.KeyProvider))
	}
	return errors.Join(errs...)
}
