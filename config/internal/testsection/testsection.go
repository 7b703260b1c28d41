// Package testsection is a registered section for config's own tests. They
// register it in a registry of their own, never in the process's: the
// package has no init.
package testsection

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Key is the section's key in the tests' files.
const Key = "widget"

// Config is the section's struct.
type Config struct {
	// Dir is where widgets are kept; relative paths resolve against the
	// working directory.
	Dir string `yaml:"dir"`
	// Every is how often a widget turns.
	Every time.Duration `yaml:"every"`
	// Limit is how many widgets turn at once.
	Limit int `yaml:"limit"`
	// Inner is a nested block.
	Inner Inner `yaml:"inner"`
}

// Inner is a nested block of the section.
type Inner struct {
	// Name names the widget.
	Name string `yaml:"name"`
}

// Default returns the defaults.
func Default() Config {
	return Config{Dir: "data/widgets", Every: time.Minute, Limit: 4, Inner: Inner{Name: "w"}}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Limit < 1 {
		errs = append(errs, fmt.Errorf("widget.limit: %d: at least 1", c.Limit))
	}
	if c.Every <= 0 {
		errs = append(errs, errors.New("widget.every: must be positive"))
	}
	return errors.Join(errs...)
}

// ResolvePaths makes Dir absolute against base.
func (c *Config) ResolvePaths(base string) {
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		c.Dir = filepath.Join(base, c.Dir)
	}
}

// NoValidate is a struct without a Validate method (a malformed section).
type NoValidate struct {
	// N is a number.
	N int `yaml:"n"`
}
