package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/baseline"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

func init() {
	register(command{name: "dlq", summary: "list, replay or drop dead-lettered route messages (replay and drop are audited)", run: runDLQ})
}

func dlqUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, "Usage: mzhub dlq list   [--config FILE] [--route ID] [--state dead|replay|replayed|dropped|all] [--limit N] [--json]")
	fmt.Fprintln(env.Stderr, "       mzhub dlq replay [--config FILE] --id N --actor NAME")
	fmt.Fprintln(env.Stderr, "       mzhub dlq drop   [--config FILE] --id N --actor NAME")
	fmt.Fprintln(env.Stderr, "\nA replay is carried out by the running hub within a second (or at its next start):")
	fmt.Fprintln(env.Stderr, "the original message goes back on its route's topic; a delivery that was in doubt is sent again.")
}

func runDLQ(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay" && args[0] != "drop") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			dlqUsage(env)
			return 0
		}
		dlqUsage(env)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile)")
	route := fs.String("route", "", "only this route (list)")
	state := fs.String("state", "", "dead (default), replay, replayed, dropped or all (list)")
	limit := fs.Int("limit", 100, "at most this many (list)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	id := fs.Int64("id", 0, "dead letter id (replay, drop)")
	actor := fs.String("actor", "", "operator name recorded in the audit log (replay, drop)")
	fs.Usage = func() { dlqUsage(env); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	db, err := store.Open(ctx, cfg.Store)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	defer db.Close()
	if err := routes.Migrate(ctx, db); err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	dl := routes.NewDeadLetters(db)
	switch sub {
	case "list":
		list, err := dl.List(ctx, routes.ListFilter{Route: *route, State: *state, Limit: *limit})
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(list); err != nil {
				return 1
			}
			return 0
		}
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROUTE\tSINK/STEP\tATTEMPTS\tSTATE\tCODE\tAT\tENDPOINT\tERROR")
		for _, d := range list {
			where := d.Sink
			if where == "" {
				where = d.Step
			}
			e := d.Error
			if len(e) > 80 {
				e = e[:80] + "…"
			}
			code := d.Code
			if code == "" {
				code = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Route, where, d.Attempts, d.State, code, d.At.UTC().Format("2006-01-02T15:04:05Z"), d.Endpoint, e)
		}
		_ = tw.Flush()
		return 0
	}
	if *id <= 0 || *actor == "" {
		fmt.Fprintf(env.Stderr, "mzhub dlq %s: --id and --actor are required\n", sub)
		return 2
	}
	kp, err := keys.New(cfg.Security.KeyProvider, cfg.Security.KeyDir)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	key, err := baseline.AuditKey(ctx, cfg.Security, kp)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub dlq %s: the audit key is needed (an unaudited %s is refused): %v\n", sub, sub, err)
		return 1
	}
	alog, err := audit.Open(ctx, db, key)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	if sub == "replay" {
		err = dl.Replay(ctx, *id, *actor, alog)
	} else {
		err = dl.Drop(ctx, *id, *actor, alog)
	}
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	verb := map[string]string{"replay": "replay requested", "drop": "dropped"}[sub]
	fmt.Fprintf(env.Stdout, "dead letter %s: %s by %s (audited)\n", strconv.FormatInt(*id, 10), verb, *actor)
	return 0
}
