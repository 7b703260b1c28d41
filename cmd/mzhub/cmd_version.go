package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"

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
	fmt.Fprintf(env.Stdout, "mzhub %s\ncommit:   %s\ngo:       %s\nplatform: %s/%s\n", hub.Version, hub.Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
