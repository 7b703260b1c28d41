//go:build mzhub_embedded

package hub_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub"
)

// The embedded-only build (deploy/build.sh's mzhub-embedded-*, -tags
// mzhub_embedded) runs the embedded profile and refuses, with the reason and
// the fix, a configuration that needs the Pulsar or ClickHouse client it
// does not link. .ci/run runs these with the tag.

// embeddedConfig is the demo's configuration in a directory of the test
// (the keys too), as serve would run it.
func embeddedConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, _, err := hub.DemoConfig(filepath.Join(t.TempDir(), "hub"), "127.0.0.1:0", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node = "embedded"
	return cfg
}

func TestEmbeddedBuildRunsTheEmbeddedProfile(t *testing.T) {
	if hub.Flavour != "embedded" {
		t.Fatalf("Flavour = %q in a -tags mzhub_embedded build", hub.Flavour)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := hub.Build(ctx, embeddedConfig(t), slog.New(slog.NewTextHandler(io.Discard, nil)), hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	select {
	case <-h.Started():
	case err := <-done:
		t.Fatalf("the embedded profile stopped: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the embedded profile did not start in 2 minutes")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestEmbeddedBuildRefusesClusterClients(t *testing.T) {
	for name, set := range map[string]func(*testing.T) error{
		"pulsar": func(t *testing.T) error {
			cfg := embeddedConfig(t)
			cfg.Bus.Kind = "pulsar"
			cfg.Bus.Pulsar.URL = "pulsar://127.0.0.1:1"
			_, err := hub.Build(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), hub.Options{})
			return err
		},
		"clickhouse": func(t *testing.T) error {
			cfg := embeddedConfig(t)
			cfg.Monitor.Store = "clickhouse"
			cfg.Monitor.ClickHouse.Addr = "127.0.0.1:1"
			_, err := hub.Build(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), hub.Options{})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := set(t)
			if err == nil || !strings.Contains(err.Error(), "embedded-only build") || !strings.Contains(err.Error(), "run the full build") {
				t.Fatalf("want the embedded-only build's refusal, got %v", err)
			}
		})
	}
}
