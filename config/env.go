package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "MZHUB_"

var durationType = reflect.TypeOf(time.Duration(0))

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
	walkFields(reflect.ValueOf(cfg).Elem(), "", func(path string, v reflect.Value) {
		raw := getenv(EnvName(path))
		if raw == "" {
			return
		}
		if err := setScalar(v, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s=%q: %w", path, EnvName(path), raw, err))
		}
	})
	return errors.Join(errs...)
}

// walkFields calls fn for every scalar leaf with its dotted yaml path.
func walkFields(v reflect.Value, prefix string, fn func(path string, v reflect.Value)) {
	for _, f := range fields(v, prefix) {
		if f.isSection() {
			walkFields(f.value, f.path, fn)
			continue
		}
		switch f.Type.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64:
			fn(f.path, f.value)
		}
	}
}

// field is one key of a config struct as YAML sees it; the environment
// overrides, the reference and the JSON Schema all walk these.
type field struct {
	reflect.StructField
	// name is the YAML key, path the dotted path from the top.
	name, path string
	// value is the field's value in the struct walked.
	value reflect.Value
	// docKey finds the field's doc comment in a fieldDocs.
	docKey string
}

// isSection tells whether the field is a nested struct (a section of keys).
func (f field) isSection() bool { return f.Type.Kind() == reflect.Struct && f.Type != durationType }

// fields lists the YAML keys of struct value v (exported, not "-").
func fields(v reflect.Value, prefix string) []field {
	t := v.Type()
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if !f.IsExported() || name == "-" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		out = append(out, field{StructField: f, name: name, path: path, value: v.Field(i),
			docKey: t.PkgPath() + "." + t.Name() + "." + f.Name})
	}
	return out
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
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
