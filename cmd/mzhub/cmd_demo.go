package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/security/accounts"
)

func init() {
	register(command{name: "demo", summary: "run the embedded profile with every partner simulator wired in", run: runDemo})
}

func runDemo(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	listen := fs.String("listen", "127.0.0.1:8470", "address of the console and API")
	dataDir := fs.String("data", "", "data directory (default: a fresh temporary directory, removed on exit)")
	runFor := fs.Duration("for", 0, "stop by itself after this long (0: run until Ctrl-C)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: mzhub demo [--listen HOST:PORT] [--data DIR] [--for DURATION]")
		fmt.Fprintln(env.Stderr, "\nStarts the hub on the embedded profile plus in-process simulators of the partners")
		fmt.Fprintln(env.Stderr, "(six bank SFTP servers, funeral homes, ...) and drives real flows through it.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "mzhub-demo-")
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfg, shipped, err := hub.DemoConfig(dir, *listen, env.Getenv)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	dir = cfg.DataDir
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	log := hub.NewLogger(env.Stderr, cfg.Log.Level, logFormat(env, cfg.Log.Format))
	if shipped {
		log.Info("demo: no configs/ here; using the partner, route and mapping files shipped in the binary", "dir", cfg.Paths.Mappings)
	}
	h, err := hub.Build(ctx, cfg, log, hub.Options{Demo: true})
	if err != nil {
		log.Error("demo: start failed", "err", err)
		return 1
	}
	// A console operator for the demo. There is no default password: the
	// one-time password below must be changed at first login, as in production.
	// A data directory of an earlier run keeps its operator: the password
	// chosen then stays; one never changed is replaced by a new one-time
	// password (the earlier one was printed only once).
	acc, demoActor := h.Security().Accounts, accounts.Actor{Name: "system:demo"}
	otp, err := acc.CreateUser(ctx, demoActor, "demo-ops", "演示值班员", accounts.RoleOperator)
	password := "one-time password " + otp + ": choose a new one at first login"
	if errors.Is(err, accounts.ErrExists) {
		var u accounts.User
		if u, err = acc.Get(ctx, "demo-ops"); err == nil && !u.MustChange && !u.PasswordExpired {
			password = "the password chosen in an earlier run on this data directory"
		} else if err == nil {
			otp, err = acc.ResetPassword(ctx, demoActor, "demo-ops")
			password = "one-time password " + otp + ": choose a new one at first login"
		}
	}
	if err != nil {
		log.Error("demo: create console operator", "err", err)
		return 1
	}
	go func() {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		addr, err := h.Addr(actx)
		if err != nil {
			return
		}
		fmt.Fprintf(env.Stdout, "\nmzhub demo is running (embedded profile, data in %s)\n", dir)
		fmt.Fprintf(env.Stdout, "  console:  http://%s/console/   (user demo-ops, %s)\n", addr, password)
		fmt.Fprintf(env.Stdout, "  API:      http://%s/partner/v1/   spec: http://%s/docs/api/partner.yaml\n", addr, addr)
		fmt.Fprintln(env.Stdout, "  flows:    6 bank SFTP simulators run this month's allowance cycle; 3 funeral homes and 6 cemeteries push through the signed API")
		// The simulated homes' booking APIs listen shortly after the hub.
		for len(h.DemoBookingURLs()) == 0 && actx.Err() == nil {
			select {
			case <-actx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		urls := h.DemoBookingURLs()
		ids := make([]string, 0, len(urls))
		for id := range urls {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for i, id := range ids {
			label := ""
			if i == 0 {
				label = "booking:"
			}
			fmt.Fprintf(env.Stdout, "  %-9s %s  %s/booking/v1/  (the hub signs with key id demo-hub-%s)\n", label, id, urls[id], strings.TrimPrefix(id, "funeral."))
		}
		if len(ids) > 0 {
			fmt.Fprintln(env.Stdout, "            reference booking simulators (docs/api/booking.yaml); one of your own: mzhub bookingsim")
		}
		maddr, _ := h.MetricsAddr(actx)
		fmt.Fprintf(env.Stdout, "  health:   http://%s/healthz   ready: http://%s/readyz   metrics: http://%s/metrics\n", addr, addr, maddr)
		fmt.Fprintln(env.Stdout, "Press Ctrl-C to stop.")
	}()
	if err := h.Run(ctx); err != nil {
		log.Error("demo stopped with an error", "err", err)
		return 1
	}
	return 0
}
