package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/security/filesign"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/store"
)

func init() {
	register(command{name: "keys", summary: "keys: init, rotate (field key), reencrypt, status, retire, public-key (SM2, for banks)", run: runKeys})
}

func keysUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, `Usage:
  mzhub keys init       [--config FILE]   create every missing key (file provider); prints names only
  mzhub keys rotate     [--config FILE]   add a new field-encryption key; it encrypts from the next start
  mzhub keys reencrypt  [--config FILE]   move every sealed value (columns, files) to the newest field key
  mzhub keys status     [--config FILE]   how many stored values each field key still seals, and where
  mzhub keys retire     [--config FILE] [--bus-drained] KID
                                          remove an old field key once no stored value needs it
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
	verify := fs.Bool("verify", false, "status: also open every sealed value and count those that do not open")
	drained := fs.Bool("bus-drained", false, "retire with the Pulsar bus: every topic's backlog and retention hold no message sealed under the key")
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
	case "rotate", "reencrypt", "status", "retire":
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
	at := sealedPlace(d.cfg, d.db)
	switch sub {
	case "rotate":
		name, err := keys.RotateField(ctx, kp, time.Now())
		_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "keys.rotate", Object: name, Outcome: outcomeOf(err == nil)})
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub keys rotate: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "added %s: new values are encrypted with it after the hub restarts; then run mzhub keys reencrypt\n", name)
		return 0
	case "status":
		return keysStatus(ctx, env, at, kp, *verify)
	case "retire":
		return keysRetire(ctx, env, d, at, kp, fs.Args(), *drained, who)
	}
	moved, failed, err := reencryptAll(ctx, env, at, kp)
	outcome := outcomeOf(err == nil)
	_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "keys.reencrypt", Object: "sealed values", Outcome: outcome,
		Detail: fmt.Sprintf("%d values moved, %d could not be opened", moved, failed)})
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys reencrypt: %v\n", err)
		return 1
	}
	return 0
}

// sealedPlace is where the hub of cfg keeps sealed values: its state
// database, its data directory and the disbursement directory (which may
// be configured outside it).
func sealedPlace(cfg config.Config, db *store.DB) fieldcrypt.Place {
	return fieldcrypt.Place{DB: db, Dirs: []string{cfg.DataDir, disbursement.ConfigFrom(cfg).Dir}}
}

// reencryptAll moves every registered sealed target to the active key. It
// goes on past a target whose values cannot all be opened, so that one
// damaged value does not hold back the rest, and then fails naming it. It
// is idempotent; run again after a stop, it continues with what is left.
func reencryptAll(ctx context.Context, env *cliEnv, at fieldcrypt.Place, kp keys.Provider) (moved, failed int64, err error) {
	ring, err := fieldcrypt.LoadRing(ctx, kp)
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, t := range fieldcrypt.Registered() {
		m, err := t.Move(ctx, at, ring)
		moved += m.Values
		failed += m.Failed
		if err != nil {
			return moved, failed, fmt.Errorf("%s: %w (run it again to continue)", t, err)
		}
		fmt.Fprintf(env.Stdout, "%s: %d values moved to key %s\n", t, m.Values, ring.ActiveKID())
		if m.Failed > 0 {
			fmt.Fprintf(env.Stdout, "%s: %d values could not be opened and were left as they are: %v\n", t, m.Failed, m.Err)
			errs = append(errs, fmt.Errorf("%s: %d values could not be opened: %w", t, m.Failed, m.Err))
		}
	}
	return moved, failed, errors.Join(errs...)
}

// inventory counts every registered target's sealed values by key id.
func inventory(ctx context.Context, at fieldcrypt.Place, open *fieldcrypt.Ring) (map[string]fieldcrypt.Inventory, fieldcrypt.Inventory, error) {
	per := map[string]fieldcrypt.Inventory{}
	total := fieldcrypt.Inventory{}
	for _, t := range fieldcrypt.Registered() {
		inv, err := t.Inventory(ctx, at, open)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", t, err)
		}
		per[t.String()] = inv
		total.Add(inv)
	}
	return per, total, nil
}

// keysStatus prints, for each field key, how many stored values are still
// sealed under it and where.
func keysStatus(ctx context.Context, env *cliEnv, at fieldcrypt.Place, kp keys.Provider, verify bool) int {
	ring, err := fieldcrypt.LoadRing(ctx, kp)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys status: %v\n", err)
		return 1
	}
	var open *fieldcrypt.Ring
	if verify {
		open = ring
	}
	per, total, err := inventory(ctx, at, open)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys status: %v\n", err)
		return 1
	}
	for _, kid := range ring.KIDs() {
		role := "old"
		if kid == ring.ActiveKID() {
			role = "active"
		}
		fmt.Fprintf(env.Stdout, "field/%s (%s): %d values\n", kid, role, total[kid])
		if kid != ring.ActiveKID() {
			for _, name := range slices.Sorted(maps.Keys(per)) {
				if n := per[name][kid]; n > 0 {
					fmt.Fprintf(env.Stdout, "  %s: %d\n", name, n)
				}
			}
		}
	}
	code := 0
	for _, kid := range slices.Sorted(maps.Keys(total)) {
		if kid == fieldcrypt.Unreadable || slices.Contains(ring.KIDs(), kid) || total[kid] == 0 {
			continue
		}
		fmt.Fprintf(env.Stdout, "%s (not held: these values cannot be opened): %d values\n", kid, total[kid])
		code = 1
	}
	if n := total[fieldcrypt.Unreadable]; n > 0 {
		fmt.Fprintf(env.Stdout, "unreadable (malformed, or did not open): %d values\n", n)
		for _, name := range slices.Sorted(maps.Keys(per)) {
			if n := per[name][fieldcrypt.Unreadable]; n > 0 {
				fmt.Fprintf(env.Stdout, "  %s: %d\n", name, n)
			}
		}
		code = 1
	}
	return code
}

// keysRetire removes an old field key once no stored value is sealed under
// it. It refuses the active key, a key any value still needs, and, on the
// Pulsar bus (whose messages it cannot see), unless told the topics were
// drained since the hub started sealing with the new key.
func keysRetire(ctx context.Context, env *cliEnv, d *secDeps, at fieldcrypt.Place, kp keys.Provider, args []string, drained bool, who string) int {
	if len(args) != 1 {
		fmt.Fprintln(env.Stderr, "Usage: mzhub keys retire [--config FILE] [--bus-drained] KID")
		return 2
	}
	kid := strings.TrimPrefix(args[0], keys.FieldPrefix)
	err := retireField(ctx, env, d, at, kp, kid, drained)
	_, _ = d.audit.Append(ctx, audit.Record{Actor: who, Action: "keys.retire", Object: keys.FieldPrefix + kid, Outcome: outcomeOf(err == nil), Detail: errDetail(err)})
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys retire: %v\n", err)
		return 1
	}
	return 0
}

func errDetail(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func retireField(ctx context.Context, env *cliEnv, d *secDeps, at fieldcrypt.Place, kp keys.Provider, kid string, drained bool) error {
	ring, err := fieldcrypt.LoadRing(ctx, kp)
	if err != nil {
		return err
	}
	if !slices.Contains(ring.KIDs(), kid) {
		return fmt.Errorf("%s%s: %w", keys.FieldPrefix, kid, keys.ErrNotFound)
	}
	if kid == ring.ActiveKID() {
		return fmt.Errorf("%s%s is the active key: rotate first (mzhub keys rotate)", keys.FieldPrefix, kid)
	}
	if d.cfg.Bus.Kind != "local" && !drained {
		return fmt.Errorf("the %s bus may hold messages sealed under %s that this command cannot see: retire it once every topic's backlog and retention passed since the replicas restarted with the new key, with --bus-drained", d.cfg.Bus.Kind, kid)
	}
	per, total, err := inventory(ctx, at, nil)
	if err != nil {
		return err
	}
	if total[kid] > 0 {
		var where []string
		for _, name := range slices.Sorted(maps.Keys(per)) {
			if n := per[name][kid]; n > 0 {
				where = append(where, fmt.Sprintf("%s: %d", name, n))
			}
		}
		return fmt.Errorf("%w: %d values are sealed under %s (%s): run mzhub keys reencrypt first (after every replica restarted with the new key)",
			fieldcrypt.ErrKeyInUse, total[kid], kid, strings.Join(where, ", "))
	}
	// Every value must open without the key before it goes.
	rest, err := ring.Without(kid)
	if err != nil {
		return err
	}
	if _, total, err = inventory(ctx, at, rest); err != nil {
		return err
	}
	if n := total[fieldcrypt.Unreadable]; n > 0 {
		return fmt.Errorf("%d stored values do not open without %s (see mzhub keys status --verify): nothing retired", n, kid)
	}
	del, ok := kp.(keys.Deleter)
	if !ok {
		fmt.Fprintf(env.Stdout, "no stored value is sealed under %s: remove %s from every replica's key set (it is not read from a file this command can change)\n",
			kid, keys.EnvName(keys.FieldPrefix+kid))
		return nil
	}
	if err := del.Delete(ctx, keys.FieldPrefix+kid); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "retired %s%s: no stored value needed it; backups taken before the re-encryption still do\n", keys.FieldPrefix, kid)
	return nil
}
