package hub

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/configs"
)

// DemoConfig is the embedded profile as mzhub demo runs it: every file of
// the hub under dir, the listener on listen, the node named demo. When the
// working directory has no configs/ (a built binary run elsewhere), the
// partner, route and mapping files shipped in the binary are extracted under
// dir; shipped reports it.
func DemoConfig(dir, listen string, getenv func(string) string) (cfg config.Config, shipped bool, err error) {
	cfg, err = config.Load("", getenv)
	if err != nil {
		return cfg, false, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return cfg, false, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return cfg, false, fmt.Errorf("demo: working directory: %w", err)
	}
	cfg.Resolve(wd)
	if _, err := os.Stat(cfg.Paths.Mappings); err != nil {
		if cfg.Paths, err = extractShipped(filepath.Join(dir, "configs")); err != nil {
			return cfg, false, err
		}
		shipped = true
	}
	cfg.DataDir = dir
	cfg.Store.Path = filepath.Join(dir, "mzhub.db")
	cfg.Monitor.SQLitePath = filepath.Join(dir, "monitor.db")
	cfg.Security.KeyDir = filepath.Join(dir, "keys")
	cfg.HTTP.Listen = listen
	// The demo's metrics listener takes a free port (printed in the banner):
	// several demos and tests run side by side on one machine.
	if host, _, err := net.SplitHostPort(listen); err == nil {
		cfg.HTTP.MetricsListen = net.JoinHostPort(host, "0")
	}
	cfg.Node = "demo"
	cfg.Monitor.CheckInterval = 5 * time.Second // alerts and late files show within seconds
	return cfg, shipped, nil
}

// extractShipped writes the partner, route and mapping files embedded in
// the binary under dir (replacing an earlier copy) and returns their paths.
func extractShipped(dir string) (config.PathsConfig, error) {
	if err := os.RemoveAll(dir); err != nil {
		return config.PathsConfig{}, fmt.Errorf("demo: shipped configuration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil { // the data directory: owner only
		return config.PathsConfig{}, fmt.Errorf("demo: data directory: %w", err)
	}
	if err := os.CopyFS(dir, configs.Shipped); err != nil {
		return config.PathsConfig{}, fmt.Errorf("demo: shipped configuration: %w", err)
	}
	return config.PathsConfig{Partners: filepath.Join(dir, "partners"), Routes: filepath.Join(dir, "routes"),
		Mappings: filepath.Join(dir, "mappings")}, nil
}
