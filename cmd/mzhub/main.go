// Command mzhub is the exchange hub of the Shanghai Civil Affairs Bureau.
// Run `mzhub --help` for its subcommands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // Asia/Shanghai even where the system has no zone database

	"golang.org/x/term"

	_ "github.com/shanghai-mca/mzhub/connectors/all"
	"github.com/shanghai-mca/mzhub/hub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	env := &cliEnv{
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		IsTerminal: tty,
		Getenv:     os.Getenv,
		Logger:     hub.NewLogger(os.Stderr, "info", hub.LogFormatFor(tty)),
	}
	code := dispatch(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}
