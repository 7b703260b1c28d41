package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/shanghai-mca/mzhub/hub"
)

func init() {
	register(command{name: "version", summary: "print version, commit, Go version and platform", run: runVersion})
}

func runVersion(_ context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, "Usage: mzhub version"); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	version, commit := hub.Version, hub.Commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && commit == "unknown" {
				commit = s.Value
			}
		}
	}
	fmt.Fprintf(env.Stdout, "mzhub %s\ncommit:   %s\ngo:       %s\nplatform: %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
