package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// cliEnv is what a subcommand gets from main.
type cliEnv struct {
	// Stdout and Stderr are the process's output streams (buffers in tests).
	Stdout, Stderr io.Writer
	// Logger writes structured logs to Stderr.
	Logger *slog.Logger
	// IsTerminal is true when Stderr is a terminal (progress bars, text logs).
	IsTerminal bool
	// Getenv reads the environment (a map in tests).
	Getenv func(string) string
}

// command is one subcommand of the mzhub binary.
type command struct {
	// name is the word after mzhub.
	name string
	// summary is one line for the usage text.
	summary string
	// run executes the command with the arguments after its name and returns
	// the process exit code (0 ok, 1 failure, 2 usage error).
	run func(ctx context.Context, env *cliEnv, args []string) int
}

// commands is the init-time registry of subcommands; each cmd_*.go file
// registers its command in init.
var commands = map[string]command{}

// register adds a subcommand; a duplicate name is a programmer error.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("mzhub: duplicate command " + c.name)
	}
	commands[c.name] = c
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mzhub — the exchange hub of the Shanghai Civil Affairs Bureau")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: mzhub <command> [flags]   (mzhub <command> --help for its flags)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
}

// dispatch runs the subcommand named by args[0].
func dispatch(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(env.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "mzhub: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return 2
	}
	return c.run(ctx, env, args[1:])
}

// isHelp reports whether err came from -h/--help in a FlagSet.
func isHelp(err error) bool {
	return err != nil && strings.Contains(err.Error(), "help requested")
}
