package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/baseline"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

func init() {
	register(command{name: "audit", summary: "verify, export, list or prune the audit chain", run: runAudit})
}

// secDeps is what the security commands (audit, user, keys) open.
type secDeps struct {
	cfg   config.Config
	db    *store.DB
	keys  keys.Provider
	audit *audit.Log
}

func (d *secDeps) close() { _ = d.db.Close() }

// openSecDeps loads the configuration, opens the state store and the key
// provider (creating missing keys when security.generate_keys is on) and the
// audit log.
func openSecDeps(ctx context.Context, env *cliEnv, cfgPath string) (*secDeps, error) {
	cfg, err := loadConfig(env, cfgPath)
	if err != nil {
		return nil, err
	}
	kp, err := keys.New(cfg.Security.KeyProvider, cfg.Security.KeyDir)
	if err != nil {
		return nil, err
	}
	if cfg.Security.GenerateKeys && cfg.Security.KeyProvider == "file" {
		created, err := keys.Init(ctx, kp, time.Now())
		if err != nil {
			return nil, err
		}
		for _, n := range created {
			fmt.Fprintf(env.Stderr, "created key %s in %s\n", n, cfg.Security.KeyDir)
		}
	}
	key, err := baseline.AuditKey(ctx, cfg.Security, kp)
	if err != nil {
		return nil, fmt.Errorf("the audit key is needed (mzhub keys init, or security.audit_key_file): %w", err)
	}
	db, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	alog, err := audit.Open(ctx, db, key)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &secDeps{cfg: cfg, db: db, keys: kp, audit: alog}, nil
}

// cliActor names who runs a command, for the audit log: the
// operating-system user the process really runs as (its uid, looked up
// with os/user), never a variable the caller can set. SUDO_USER, or a USER
// or LOGNAME naming someone else, is recorded only as a claim beside it:
// "cli:root (claims sudo_user=alice)".
func cliActor(env *cliEnv) string {
	who := processUser()
	var claims []string
	for _, v := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if c := strings.TrimSpace(env.Getenv(v)); c != "" && c != who {
			claims = append(claims, strings.ToLower(v)+"="+c)
		}
	}
	if len(claims) == 0 {
		return "cli:" + who
	}
	return "cli:" + who + " (claims " + strings.Join(claims, " ") + ")"
}

// processUser is the name of the process's real user, or uid:<n> when the
// user database does not know it.
func processUser() string {
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid:" + strconv.Itoa(os.Getuid())
}

func auditUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, `Usage:
  mzhub audit verify [--config FILE] [--file EXPORT.jsonl] [--anchor SEQ:MAC]
      walk the chain (or an export file) and report the first edited, removed or inserted record;
      with --anchor (from the hub's daily "audit chain head" log line or an export receipt) also
      check the chain was not rolled back past it; exit 0 when it holds, 1 when it is broken
  mzhub audit export [--config FILE] --out FILE [--from RFC3339] [--to RFC3339]
      write the chain as JSON lines for off-host backup (mode 0600); audited
  mzhub audit list   [--config FILE] [--actor A] [--action A] [--from RFC3339] [--limit N] [--json]
  mzhub audit prune  [--config FILE] [--before RFC3339]
      remove records older than security.audit.retention (at least 180 days); export first`)
}

func runAudit(ctx context.Context, env *cliEnv, args []string) int {
	sub, code, ok := subcommand(env, args, auditUsage)
	if !ok {
		return code
	}
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile)")
	file := fs.String("file", "", "verify this export file instead of the database (verify)")
	out := fs.String("out", "", "export file to write (export)")
	from := fs.String("from", "", "first time, RFC 3339 (export, list)")
	to := fs.String("to", "", "end time, RFC 3339, exclusive (export)")
	before := fs.String("before", "", "prune records before this time, RFC 3339 (default: now minus the retention)")
	actor := fs.String("actor", "", "only this actor (list)")
	action := fs.String("action", "", "only this action (list)")
	limit := fs.Int("limit", 100, "at most this many (list)")
	asJSON := fs.Bool("json", false, "print JSON (verify, list)")
	anchor := fs.String("anchor", "", "SEQ:MAC the chain must still hold (verify)")
	fs.Usage = func() { auditUsage(env); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	parseT := func(s string) (time.Time, error) {
		if s == "" {
			return time.Time{}, nil
		}
		return time.Parse(time.RFC3339, s)
	}
	tFrom, err1 := parseT(*from)
	tTo, err2 := parseT(*to)
	tBefore, err3 := parseT(*before)
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Fprintf(env.Stderr, "mzhub audit %s: %v\n", sub, err)
		return 2
	}
	switch sub {
	case "verify", "export", "list", "prune":
	default:
		auditUsage(env)
		return 2
	}
	if sub == "export" && *out == "" {
		fmt.Fprintln(env.Stderr, "mzhub audit export: --out is required")
		return 2
	}

	if sub == "verify" && *file != "" {
		cfg, err := loadConfig(env, *cfgPath)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		kp, err := keys.New(cfg.Security.KeyProvider, cfg.Security.KeyDir)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		key, err := baseline.AuditKey(ctx, cfg.Security, kp)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		defer f.Close()
		rep, err := audit.VerifyExport(f, key)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		return printReport(env, rep, *asJSON)
	}

	d, err := openSecDeps(ctx, env, *cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub audit %s: %v\n", sub, err)
		return 1
	}
	defer d.close()
	who := cliActor(env)
	switch sub {
	case "verify":
		rep, err := d.audit.Verify(ctx)
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		if *anchor != "" {
			a, err := audit.ParseAnchor(*anchor)
			if err != nil {
				fmt.Fprintln(env.Stderr, err)
				return 2
			}
			if err := d.audit.CheckAnchor(ctx, a); err != nil {
				fmt.Fprintln(env.Stdout, err)
				_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "audit.verify", Object: "audit_log", Outcome: audit.OutcomeFailure, Detail: err.Error()})
				return 1
			}
			fmt.Fprintf(env.Stdout, "anchor %d holds\n", a.Seq)
		}
		_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "audit.verify", Object: "audit_log", Outcome: outcomeOf(rep.OK()), Detail: rep.String()})
		return printReport(env, rep, *asJSON)
	case "export":
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub audit export: %v\n", err)
			return 1
		}
		n, err := d.audit.ExportRange(ctx, f, tFrom, tTo)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "audit.export", Object: *out, Outcome: outcomeOf(err == nil), Detail: fmt.Sprintf("%d records", n)})
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub audit export: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "exported %d audit records to %s\n", n, *out)
		if a, err := d.audit.Head(ctx); err == nil {
			fmt.Fprintf(env.Stdout, "receipt: keep this anchor with the file: %s\n", a)
		}
		return 0
	case "list":
		es, err := d.audit.List(ctx, audit.Filter{From: tFrom, Actor: *actor, Action: *action, Limit: *limit})
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(es)
			return 0
		}
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tSOURCE IP\tACTION\tOBJECT\tOUTCOME\tDETAIL")
		for _, e := range es {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Actor, e.SourceIP, e.Action, e.Object, e.Outcome, e.Detail)
		}
		_ = tw.Flush()
		return 0
	case "prune":
		ret := d.cfg.Security.Audit.Retention
		if tBefore.IsZero() {
			tBefore = time.Now().Add(-ret)
		}
		n, err := d.audit.Prune(ctx, tBefore, ret)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub audit prune: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "pruned %d audit records older than %s\n", n, tBefore.UTC().Format(time.RFC3339))
		return 0
	}
	return 2
}

func outcomeOf(ok bool) string {
	if ok {
		return audit.OutcomeSuccess
	}
	return audit.OutcomeFailure
}

func printReport(env *cliEnv, rep audit.Report, asJSON bool) int {
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		fmt.Fprintln(env.Stdout, rep.String())
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
