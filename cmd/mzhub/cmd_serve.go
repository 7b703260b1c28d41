package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub"
)

func init() {
	register(command{name: "serve", summary: "run the hub (embedded profile unless --config says otherwise)", run: runServe})
}

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile configs/mzhub.yaml)")
	listen := fs.String("listen", "", "override http.listen (host:port)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: mzhub serve [--config FILE] [--listen HOST:PORT]")
		fmt.Fprintln(env.Stderr, "\nRuns the hub until SIGINT or SIGTERM, then shuts down within http.shutdown_timeout.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	if *listen != "" {
		cfg.HTTP.Listen = *listen
	}
	log := hub.NewLogger(env.Stderr, cfg.Log.Level, logFormat(env, cfg.Log.Format))
	h, err := hub.Build(ctx, cfg, log, hub.Options{})
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	if err := h.Run(ctx); err != nil {
		log.Error("hub stopped with an error", "err", err)
		return 1
	}
	return 0
}

// loadConfig loads the file (or the embedded default), applies MZHUB_*
// overrides and resolves relative paths against the working directory.
func loadConfig(env *cliEnv, path string) (config.Config, error) {
	cfg, err := config.Load(path, env.Getenv)
	if err != nil {
		return config.Config{}, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return config.Config{}, fmt.Errorf("config: working directory: %w", err)
	}
	cfg.Resolve(wd)
	return cfg, nil
}

func logFormat(env *cliEnv, f string) string {
	if f == "auto" {
		return hub.LogFormatFor(env.IsTerminal)
	}
	return f
}
