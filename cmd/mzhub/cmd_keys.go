package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/security/filesign"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

func init() {
	register(command{name: "keys", summary: "keys: init, rotate (field key), reencrypt, public-key (SM2, for banks)", run: runKeys})
}

func keysUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, `Usage:
  mzhub keys init       [--config FILE]   create every missing key (file provider); prints names only
  mzhub keys rotate     [--config FILE]   add a new field-encryption key; it encrypts from the next start
  mzhub keys reencrypt  [--config FILE]   move every encrypted column to the newest field key
  mzhub keys public-key [--config FILE]   print the SM2 public key that signs outbound files (PEM)
  mzhub keys generate   --out FILE [--from FILE] [--rotate-field] [--format env|k8s-secret]
                                          a cluster's key set for the env provider (every replica
                                          gets the same file); --from keeps an existing set

Key material is never printed. With key_provider env, keys are provisioned as MZHUB_KEY_*
variables and init only reports what is missing.`)
}

func runKeys(ctx context.Context, env *cliEnv, args []string) int {
	sub, code, ok := subcommand(env, args, keysUsage)
	if !ok {
		return code
	}
	if err := security.SelfTest(); err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys %s: refusing to touch keys: %v\n", sub, err)
		return 1
	}
	if sub == "generate" {
		return runKeysGenerate(env, args[1:])
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile)")
	fs.Usage = func() { keysUsage(env); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
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
	switch sub {
	case "init":
		created, err := keys.Init(ctx, kp, time.Now())
		for _, n := range created {
			fmt.Fprintf(env.Stdout, "created %s\n", n)
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub keys init: %v\n", err)
			return 1
		}
		if len(created) == 0 {
			fmt.Fprintln(env.Stdout, "all keys present")
		}
		return 0
	case "public-key":
		k, err := keys.SM2(ctx, kp, keys.SM2SignName)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub keys public-key: %v\n", err)
			return 1
		}
		pem, err := filesign.NewSigner(k, nil).PublicKeyPEM()
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			return 1
		}
		_, _ = env.Stdout.Write(pem)
		return 0
	case "rotate", "reencrypt":
	default:
		keysUsage(env)
		return 2
	}
	d, err := openSecDeps(ctx, env, *cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys %s: %v\n", sub, err)
		return 1
	}
	defer d.close()
	who := cliActor(env)
	if sub == "rotate" {
		name, err := keys.RotateField(ctx, kp, time.Now())
		_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "keys.rotate", Object: name, Outcome: outcomeOf(err == nil)})
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub keys rotate: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "added %s: new values are encrypted with it after the hub restarts; then run mzhub keys reencrypt\n", name)
		return 0
	}
	n, err := reencryptAll(ctx, env, d.db, kp)
	_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "keys.reencrypt", Object: "field columns", Outcome: outcomeOf(err == nil), Detail: fmt.Sprintf("%d values", n)})
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys reencrypt: %v\n", err)
		return 1
	}
	return 0
}

// reencryptAll moves every registered encrypted column to the active key.
func reencryptAll(ctx context.Context, env *cliEnv, db *store.DB, kp keys.Provider) (int64, error) {
	ring, err := fieldcrypt.LoadRing(ctx, kp)
	if err != nil {
		return 0, err
	}
	cols := fieldcrypt.Registered()
	if len(cols) == 0 {
		fmt.Fprintln(env.Stdout, "no encrypted columns are registered in this binary")
		return 0, nil
	}
	var total int64
	for _, c := range cols {
		if _, err := db.ExecContext(ctx, "SELECT 1 FROM "+c.Table+" WHERE 1 = 0"); err != nil {
			fmt.Fprintf(env.Stdout, "%s: skipped (table not created yet)\n", c)
			continue
		}
		n, err := fieldcrypt.ReencryptColumn(ctx, db, ring, c, 500)
		total += n
		if err != nil {
			return total, err
		}
		fmt.Fprintf(env.Stdout, "%s: %d values moved to key %s\n", c, n, ring.ActiveKID())
	}
	return total, nil
}
