package banksim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shanghai-mca/mzhub/configs/partners/banks"
	"github.com/shanghai-mca/mzhub/connectors/bank"
)

// ErrNoMappings: the mappings root (configs/mappings) was not found.
var ErrNoMappings = errors.New("sim: configs/mappings not found")

// StartAll starts the six banks of the shipped configuration under dir,
// with the demo options. The layouts are read from configs/mappings, found
// from the working directory upwards; use StartAllWith to pass them.
func StartAll(ctx context.Context, dir string) ([]*Bank, error) {
	root, err := FindMappings()
	if err != nil {
		return nil, err
	}
	return StartAllWith(ctx, dir, os.DirFS(root), DefaultOptions())
}

// StartAllWith starts the six banks with the given mappings root and options.
func StartAllWith(ctx context.Context, dir string, mappingsFS fs.FS, opts Options) ([]*Bank, error) {
	cfgs, err := ShippedConfigs()
	if err != nil {
		return nil, err
	}
	var out []*Bank
	for _, c := range cfgs {
		b, err := Start(ctx, dir, c, mappingsFS, opts)
		if err != nil {
			for _, o := range out {
				_ = o.Close()
			}
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ShippedConfigs decodes the embedded configs/partners/banks/*.yaml.
func ShippedConfigs() ([]bank.Config, error) {
	names, err := fs.Glob(banks.FS, "*.yaml")
	if err != nil {
		return nil, err
	}
	var out []bank.Config
	for _, n := range names {
		b, err := fs.ReadFile(banks.FS, n)
		if err != nil {
			return nil, err
		}
		c, err := bank.DecodeConfig(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// FindMappings looks for configs/mappings from the working directory upwards.
func FindMappings() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(d, "configs", "mappings")
		if fi, err := os.Stat(filepath.Join(p, "banks")); err == nil && fi.IsDir() {
			return p, nil
		}
		up := filepath.Dir(d)
		if up == d {
			return "", ErrNoMappings
		}
		d = up
	}
}
