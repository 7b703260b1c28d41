package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
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
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

// parseFlags parses args into fs. ok is false when the command should
// return code at once: 0 after -h (usage was printed), 2 on a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if isHelp(err) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// subcommand takes the subcommand off args. ok is false when usage was
// printed instead and the command should return code: 2 without a
// subcommand, 0 when help was asked for.
func subcommand(env *cliEnv, args []string, usage func(*cliEnv)) (sub string, code int, ok bool) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env)
		if len(args) == 0 {
			return "", 2, false
		}
		return "", 0, false
	}
	return args[0], 0, true
}
