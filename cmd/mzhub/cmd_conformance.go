package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/conformance"
	"github.com/shanghai-mca/mzhub/services/funeral"
	"github.com/shanghai-mca/mzhub/store"
)

func init() {
	register(command{name: "conformance", summary: "run the funeral interface contract tests (--role funeral-home|pusher) and print a pass/fail report", run: runConformance})
}

func runConformance(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	role := fs.String("role", "", "funeral-home (check a home's booking API) or pusher (check a partner's sandbox pushes)")
	target := fs.String("target", "", "funeral-home: base URL of the booking API under test")
	keyID := fs.String("key-id", "", "funeral-home: key id the hub signs with")
	secret := fs.String("secret", "", "funeral-home: the key's secret, 64 hex characters")
	secretEnv := fs.String("secret-env", "", "funeral-home: read the secret from this environment variable instead")
	date := fs.String("date", "", "funeral-home: day to book, YYYY-MM-DD in Asia/Shanghai (default: a week ahead)")
	timeout := fs.Duration("timeout", 5*time.Second, "funeral-home: deadline of every call")
	partner := fs.String("partner", "", "pusher: partner id to check (e.g. funeral.fh01; with --sandbox, default: the sandbox's partner)")
	localDir := fs.String("sandbox", "", "pusher: the directory of a local sandbox (mzhub sandbox --dir) instead of a hub's")
	cfgPath := fs.String("config", "", "pusher: hub configuration (registry and data directory)")
	sandboxDB := fs.String("sandbox-db", "", "pusher: the sandbox's SQLite store (default <data_dir>/funeral-sandbox.db)")
	junit := fs.String("junit", "", "also write a JUnit XML report to this file")
	out := fs.String("out", "", "write the text report to this file instead of standard output")
	serve := fs.String("serve-sandbox", "", "instead of a run: serve a throwaway sandbox API on this address (for deploy/schemathesis)")
	proxy := fs.String("signing-proxy", "127.0.0.1:0", "with --serve-sandbox: address of the proxy that signs requests as the sandbox test partner")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, `Usage:
  mzhub conformance --role funeral-home --target URL --key-id ID --secret HEX [--date YYYY-MM-DD] [--junit FILE]
  mzhub conformance --role pusher --partner ID [--config FILE] [--sandbox-db FILE] [--junit FILE]
  mzhub conformance --role pusher --sandbox DIR [--partner ID] [--junit FILE]
  mzhub conformance --serve-sandbox HOST:PORT [--signing-proxy HOST:PORT] [--sandbox-db FILE]

Exit status: 0 when every check passed, 1 when one failed, 2 for usage errors.`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *serve != "" {
		return serveSandbox(ctx, env, *serve, *proxy, *sandboxDB)
	}
	var rep conformance.Report
	var err error
	switch *role {
	case "funeral-home":
		s := *secret
		if *secretEnv != "" {
			s = env.Getenv(*secretEnv)
		}
		key, herr := hex.DecodeString(s)
		if *target == "" || *keyID == "" || herr != nil || len(key) == 0 {
			fmt.Fprintln(env.Stderr, "mzhub conformance: --target, --key-id and a hex --secret (or --secret-env) are required")
			return 2
		}
		rep, err = conformance.RunFuneralHome(ctx, conformance.FuneralHomeOptions{Target: *target, KeyID: *keyID, Secret: key, Date: *date, Timeout: *timeout})
	case "pusher":
		if *localDir != "" {
			rep, err = runLocalPusher(ctx, *localDir, *partner)
			break
		}
		if *partner == "" {
			fmt.Fprintln(env.Stderr, "mzhub conformance: --partner (or --sandbox DIR) is required")
			return 2
		}
		rep, err = runPusher(ctx, env, *cfgPath, *sandboxDB, *partner)
	default:
		fmt.Fprintln(env.Stderr, "mzhub conformance: --role must be funeral-home or pusher")
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub conformance:", err)
		return 1
	}
	var w io.Writer = env.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub conformance:", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	if err := rep.WriteText(w); err != nil {
		fmt.Fprintln(env.Stderr, "mzhub conformance:", err)
		return 1
	}
	if *junit != "" {
		f, err := os.Create(*junit)
		if err == nil {
			err = rep.WriteJUnit(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub conformance: junit:", err)
			return 1
		}
	}
	if !rep.Passed() {
		return 1
	}
	return 0
}

func runPusher(ctx context.Context, env *cliEnv, cfgPath, dbPath, partnerID string) (conformance.Report, error) {
	cfg, err := loadConfig(env, cfgPath)
	if err != nil {
		return conformance.Report{}, err
	}
	reg, err := funeral.LoadRegistry(funeral.ConfigFrom(cfg).PartnersDir)
	if err != nil {
		return conformance.Report{}, err
	}
	p, ok := reg.Partner(partnerID)
	if !ok {
		return conformance.Report{}, fmt.Errorf("partner %s is not in the registry %s", partnerID, funeral.ConfigFrom(cfg).PartnersDir)
	}
	if dbPath == "" {
		dbPath = filepath.Join(cfg.DataDir, funeral.SandboxDBFile)
	}
	st, closeSandbox, err := openSandboxStore(ctx, dbPath)
	if err != nil {
		return conformance.Report{}, err
	}
	defer closeSandbox()
	opts := conformance.PusherOptions{Store: st, StoreName: "the sandbox store " + dbPath, Partner: p}
	// The main store, when it opens, tells a partner who pushed to
	// /partner/v1/ instead of /sandbox/partner/v1/ (only a hint: a main
	// store that does not open changes no verdict, and none is created).
	if _, statErr := os.Stat(cfg.Store.Path); cfg.Store.Driver != "sqlite" || statErr == nil {
		if db, err := store.Open(ctx, cfg.Store); err == nil {
			defer db.Close()
			if prod, err := funeral.OpenStore(ctx, db, nil); err == nil {
				defer prod.Close(context.Background())
				opts.Production = prod
			}
		}
	}
	return conformance.RunPusher(ctx, opts)
}

// runLocalPusher checks the pushes into a local sandbox (mzhub sandbox).
func runLocalPusher(ctx context.Context, dir, partnerID string) (conformance.Report, error) {
	reg, err := funeral.LoadRegistry(filepath.Join(dir, sandboxRegistryDir))
	if err != nil {
		return conformance.Report{}, fmt.Errorf("%s is not a sandbox directory of mzhub sandbox: %w", dir, err)
	}
	if partnerID == "" {
		ids := reg.IDs()
		if len(ids) != 1 {
			return conformance.Report{}, fmt.Errorf("the sandbox %s has %d partners: name one with --partner", dir, len(ids))
		}
		partnerID = ids[0]
	}
	p, ok := reg.Partner(partnerID)
	if !ok {
		return conformance.Report{}, fmt.Errorf("partner %s is not in the sandbox %s", partnerID, dir)
	}
	dbPath := filepath.Join(dir, funeral.SandboxDBFile)
	st, closeSandbox, err := openSandboxStore(ctx, dbPath)
	if err != nil {
		return conformance.Report{}, err
	}
	defer closeSandbox()
	return conformance.RunPusher(ctx, conformance.PusherOptions{Store: st, StoreName: "the sandbox store " + dbPath, Partner: p})
}

// openSandboxStore opens a sandbox's SQLite store, which must exist (the
// hub or mzhub sandbox creates it).
func openSandboxStore(ctx context.Context, dbPath string) (*funeral.Store, func(), error) {
	if _, err := os.Stat(dbPath); err != nil {
		return nil, nil, fmt.Errorf("sandbox store: %w (start the sandbox first: mzhub sandbox, or a hub serving /sandbox/)", err)
	}
	sc := store.DefaultConfig()
	sc.Path = dbPath
	db, err := store.Open(ctx, sc)
	if err != nil {
		return nil, nil, err
	}
	st, err := funeral.OpenStore(ctx, db, nil)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return st, func() { _ = st.Close(context.Background()); _ = db.Close() }, nil
}

func serveSandbox(ctx context.Context, env *cliEnv, listen, proxy, dbPath string) int {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "mzhub-sandbox-")
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "sandbox.db")
	}
	s, err := conformance.StartSandbox(ctx, listen, proxy, dbPath, env.Logger)
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub conformance:", err)
		return 1
	}
	fmt.Fprintf(env.Stdout, "sandbox API:   http://%s/partner/v1/\nsigning proxy: http://%s/partner/v1/\n", s.APIAddr, s.ProxyAddr)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Close(sctx)
	return 0
}
