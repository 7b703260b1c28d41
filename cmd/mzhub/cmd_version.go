package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"

	"github.com/shanghai-mca/mzhub/hub"
)

func init() {
	register(command{name: "version", summary: "print version, commit, Go version, platform and build (full or embedded-only)", run: runVersion})
}

// buildNote says what a build links.
func buildNote(build string) string {
	if build == "embedded" {
		return "embedded (embedded profile only: no Pulsar or ClickHouse client)"
	}
	return build + " (embedded and cluster profiles)"
}

func runVersion(_ context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage: mzhub version"); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintf(env.Stdout, "mzhub %s\ncommit:   %s\ngo:       %s\nplatform: %s/%s\nbuild:    %s\n", hub.Version, hub.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, buildNote(hub.Flavour))
	return 0
}
