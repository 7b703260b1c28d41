package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestLoadBadFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings that must all appear in the error
	}{
		{"unknown_key.bad.yml", []string{"line 4", "listne", "not found"}},
		{"wrong_type.bad.yml", []string{"line 3", "soon"}},
		{"invalid_values.bad.yml", []string{`profile: "galaxy"`, `log.level: "loud"`, `http.listen: "nowhere"`, `store.driver: "oracle"`}},
		{"cluster_sqlite.bad.yml", []string{"cluster profile needs postgres", "cluster profile needs pulsar"}},
		{"two_docs.bad.yml", []string{"more than one YAML document"}},
		{"retired_key.bad.yml", []string{"line 4: http.max_body_bytes: key removed: the partner API has one body limit: set security.partner_api.max_body_bytes",
			"line 6: funeral.max_body_bytes: key removed"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file), noEnv)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestDefaultsFillUnsetKeys(t *testing.T) {
	cfg, err := Load("testdata/minimal.yml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9100" {
		t.Errorf("listen = %q", cfg.HTTP.Listen)
	}
	if cfg.HTTP.ShutdownTimeout != 15*time.Second || cfg.Store.Path != "data/mzhub.db" {
		t.Errorf("defaults not applied: %+v", cfg.HTTP)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"MZHUB_STORE_DRIVER":                "postgres",
		"MZHUB_STORE_DSN":                   "postgres://u:secret@db:5432/mzhub",
		"MZHUB_HTTP_SHUTDOWN_TIMEOUT":       "3s",
		"MZHUB_HTTP_MAX_HEADER_BYTES":       "8192",
		"MZHUB_MONITOR_CLICKHOUSE_PASSWORD": "pw",
	}
	cfg, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Driver != "postgres" || cfg.Store.DSN != env["MZHUB_STORE_DSN"] || cfg.HTTP.ShutdownTimeout != 3*time.Second ||
		cfg.HTTP.MaxHeaderBytes != 8192 || cfg.Monitor.ClickHouse.Password != "pw" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	_, err = Load("", func(k string) string {
		if k == "MZHUB_HTTP_SHUTDOWN_TIMEOUT" {
			return "forever"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "MZHUB_HTTP_SHUTDOWN_TIMEOUT") {
		t.Fatalf("bad override error = %v, want one naming the variable", err)
	}
}

// TestRetiredKeyFromEnv: a variable setting a removed key is refused with
// the migration, not ignored.
func TestRetiredKeyFromEnv(t *testing.T) {
	_, err := Load("", func(k string) string {
		if k == "MZHUB_HTTP_MAX_BODY_BYTES" {
			return "4096"
		}
		return ""
	})
	if !errors.Is(err, ErrRetiredKey) || !strings.Contains(err.Error(), "security.partner_api.max_body_bytes") {
		t.Fatalf("err = %v", err)
	}
}
