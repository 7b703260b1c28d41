package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/config/structdoc"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "MZHUB_"

var durationType = structdoc.DurationType

// EnvName returns the environment variable that overrides a key path such as
// "store.dsn" (MZHUB_STORE_DSN).
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// ApplyEnv overrides every scalar field from its MZHUB_<PATH> variable when
// the variable is set, so secrets (DSN passwords, tokens) stay out of files.
// All parse errors are reported at once.
func ApplyEnv(cfg *Config, getenv func(string) string) error {
	var errs []error
	doc := cfg.document()
	walkFields(doc.v, "", func(path string, v reflect.Value) {
		raw := getenv(EnvName(path))
		if raw == "" {
			return
		}
		if err := setScalar(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s=%q: %w", path, EnvName(path), raw, err))
		}
	})
	*cfg = doc.config()
	return errors.Join(errs...)
}

// walkFields calls fn for every scalar leaf with its dotted yaml path.
func walkFields(v reflect.Value, prefix string, fn func(path string, v reflect.Value)) {
	for _, f := range structdoc.Fields(v, prefix) {
		if f.IsSection() {
			walkFields(f.Value, f.Path, fn)
			continue
		}
		switch f.Type.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64:
			fn(f.Path, f.Value)
		}
	}
}

func setScalar(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported kind %s", v.Kind())
	}
	return nil
}
