package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

func init() {
	register(command{name: "banksim", summary: "run the six simulated banks (SFTP on 127.0.0.1) and write their partner files", run: runBankSim})
}

// runBankSim starts the six banks' simulators, as `mzhub demo` runs them,
// for an operator's or integrator's own hub: it writes a partner file per
// bank (address, user, password, pinned host key) under --partners/banks,
// prints where everything is and runs until SIGINT or SIGTERM.
func runBankSim(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("banksim", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("dir", "banksim", "the banks' SFTP roots (one directory per bank)")
	partners := fs.String("partners", "", "partners directory to write banks/<code>.yaml into (default DIR/partners)")
	mappingsDir := fs.String("mappings", "configs/mappings", "mappings root (the banks' file layouts)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: mzhub banksim [--dir DIR] [--partners DIR] [--mappings DIR]")
		fmt.Fprintln(env.Stderr, "\nRuns the six simulated banks until SIGINT or SIGTERM. Point a hub's paths.partners at --partners.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *partners == "" {
		*partners = filepath.Join(*dir, "partners")
	}
	if _, err := os.Stat(filepath.Join(*mappingsDir, "banks")); err != nil {
		fmt.Fprintf(env.Stderr, "mzhub banksim: no bank layouts under %s (run from the repository root or pass --mappings): %v\n", *mappingsDir, err)
		return 1
	}
	sims, err := banksim.StartAllWith(ctx, *dir, os.DirFS(*mappingsDir), banksim.DefaultOptions())
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub banksim:", err)
		return 1
	}
	defer func() {
		for _, s := range sims {
			_ = s.Close()
		}
	}()
	banksDir := filepath.Join(*partners, "banks")
	if err := os.MkdirAll(banksDir, 0o700); err != nil {
		fmt.Fprintln(env.Stderr, "mzhub banksim:", err)
		return 1
	}
	for _, s := range sims {
		b, err := yaml.Marshal(s.Config)
		if err == nil {
			b = append([]byte(fmt.Sprintf("# %s: simulated by `mzhub banksim` (SFTP root %s); not a real bank.\n", s.Config.Name, s.Root())), b...)
			err = ownerfile.Write(filepath.Join(banksDir, s.Config.Code+".yaml"), b)
		}
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub banksim:", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%-6s %s  sftp://%s@%s  root %s\n", s.Config.Code, s.Config.Name, s.Config.SFTP.User, s.Config.SFTP.Addr, s.Root())
	}
	abs, _ := filepath.Abs(*partners)
	fmt.Fprintf(env.Stdout, "partner files: %s\n", filepath.Join(abs, "banks"))
	fmt.Fprintf(env.Stdout, "next: MZHUB_PATHS_PARTNERS=%s mzhub serve --config FILE   (copy configs/partners/funeral there too)\n", abs)
	fmt.Fprintln(env.Stdout, "banks ready")
	<-ctx.Done()
	return 0
}
