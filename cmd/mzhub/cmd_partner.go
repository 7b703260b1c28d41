package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

func init() {
	register(command{name: "partner", summary: "funeral partners: add, rotate-key, drop-old, disable, enable, import, list (credentials in the state store)", run: runPartner})
}

func partnerUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, `Usage:
  mzhub partner add --id funeral.fh16 --name NAME --role funeral_home|cemetery|columbarium
                    [--env sandbox[,production]] [--allow-ip IP|CIDR,...] [--division 3101xx]
                    [--booking-url URL --booking-key-id KEY_ID] [--no-file]
  mzhub partner rotate-key --id ID [--drop-old]
  mzhub partner drop-old --id ID          (revoke every key of ID but the newest)
  mzhub partner disable|enable --id ID
  mzhub partner import                    (bring the registry files into the state store)
  mzhub partner list

Common flags: --config FILE (store, keys and paths from the hub configuration), --dir DIR
(registry directory, default funeral.partners_dir). Changes are written to the shared state
store, audited, and applied by every running replica within funeral.partner_reload (2 s by
default); no restart. Secrets are sealed in the store under the hub's field keys, so a
read-only key provider (env) is enough. The secret is printed once: hand it to the integrator
through a separate channel. add also appends the partner's non-secret fields to its role's
registry file, keeping the file's comments (--no-file: store only).`)
}

func runPartner(ctx context.Context, env *cliEnv, args []string) int {
	sub, code, ok := subcommand(env, args, partnerUsage)
	if !ok {
		return code
	}
	fs := flag.NewFlagSet("partner "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { partnerUsage(env) }
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile)")
	dir := fs.String("dir", "", "registry directory (default funeral.partners_dir)")
	id := fs.String("id", "", "partner id: funeral.<name>, cemetery.<name> or columbarium.<name>")
	name := fs.String("name", "", "institution name")
	role := fs.String("role", "", "funeral_home, cemetery or columbarium")
	envs := fs.String("env", "sandbox", "environments, comma separated: sandbox, production")
	allow := fs.String("allow-ip", "", "allowed source addresses or CIDR prefixes, comma separated")
	division := fs.String("division", "", "district code 3101xx")
	bookingURL := fs.String("booking-url", "", "add: base URL of the home's booking API")
	bookingKey := fs.String("booking-key-id", "", "add: key id the hub signs booking calls with (partner/<id> in the key provider)")
	noFile := fs.Bool("no-file", false, "add: write the state store only, not the registry file")
	dropOld := fs.Bool("drop-old", false, "rotate-key: revoke the previous keys at once")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	switch sub {
	case "add", "rotate-key", "drop-old", "disable", "enable", "import", "list":
	default:
		fmt.Fprintf(env.Stderr, "mzhub partner: unknown subcommand %q\n", sub)
		partnerUsage(env)
		return 2
	}
	need := func(v, flagName string) bool {
		if v == "" {
			fmt.Fprintf(env.Stderr, "mzhub partner %s: --%s is required\n", sub, flagName)
			return false
		}
		return true
	}
	if sub != "import" && sub != "list" && !need(*id, "id") {
		return 2
	}
	if sub == "add" && (!need(*name, "name") || !need(*role, "role")) {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(env.Stderr, "mzhub partner %s: %v\n", sub, err)
		return 1
	}
	d, err := openSecDeps(ctx, env, *cfgPath)
	if err != nil {
		return fail(err)
	}
	defer d.close()
	if *dir == "" {
		*dir = funeral.ConfigFrom(d.cfg).PartnersDir
	}
	ring, err := fieldcrypt.LoadRing(ctx, d.keys)
	if err != nil {
		return fail(fmt.Errorf("the field keys seal partner secrets: %w", err))
	}
	ps, err := funeral.OpenPartnerStore(ctx, d.db, ring, d.audit, nil)
	if err != nil {
		return fail(err)
	}
	actor := cliActor(env)
	// The registry files are the declarative source of the non-secret
	// fields: bring them in first, as the hub does at start.
	if _, statErr := os.Stat(*dir); statErr == nil && sub != "list" {
		reg, err := funeral.LoadRegistry(*dir)
		if err != nil {
			return fail(err)
		}
		res, err := ps.Import(ctx, reg.Partners(), actor)
		if err != nil {
			return fail(err)
		}
		if res != (funeral.ImportResult{}) || sub == "import" {
			fmt.Fprintf(env.Stdout, "imported %s: %d added, %d updated, %d disabled, %d key ids\n", *dir, res.Added, res.Updated, res.Disabled, res.Keys)
		}
	} else if sub == "import" {
		return fail(fmt.Errorf("registry directory %s: %w", *dir, statErr))
	}
	show := func(iss funeral.Issued) {
		fmt.Fprintf(env.Stdout, "partner:  %s\nkey id:   %s\nsecret:   %s\n\nThe secret is shown once. Deliver it through a separate channel; see docs/onboarding.md.\n",
			iss.PartnerID, iss.KeyID, iss.SecretHex)
	}
	applies := func() {
		fmt.Fprintf(env.Stdout, "Running replicas apply this within %s (funeral.partner_reload).\n", funeral.ConfigFrom(d.cfg).PartnerReload)
	}
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	switch sub {
	case "add":
		p := funeral.Partner{ID: *id, Name: *name, Role: funeral.Role(*role), DivisionCode: *division,
			Environments: split(*envs), AllowIPs: split(*allow), BookingURL: *bookingURL, BookingKeyID: *bookingKey}
		iss, err := ps.Add(ctx, p, actor)
		if err != nil {
			return fail(err)
		}
		show(iss)
		applies()
		if !*noFile {
			if err := funeral.AppendToFile(*dir, p); err != nil {
				fmt.Fprintf(env.Stderr, "mzhub partner add: the partner is in the state store, but the registry file was not edited: %v\n", err)
				return 1
			}
			fmt.Fprintf(env.Stdout, "Appended to %s (commit it to your configuration repository).\n", funeral.FileFor(*dir, p.Role))
		}
	case "rotate-key":
		iss, err := ps.RotateKey(ctx, *id, *dropOld, actor)
		if err != nil {
			return fail(err)
		}
		show(iss)
		applies()
		if !*dropOld {
			fmt.Fprintf(env.Stdout, "The previous keys stay valid until: mzhub partner drop-old --id %s\n", *id)
		}
	case "drop-old":
		n, err := ps.DropOldKeys(ctx, *id, actor)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(env.Stdout, "%s: %d key(s) revoked\n", *id, n)
		applies()
	case "disable", "enable":
		if err := ps.SetDisabled(ctx, *id, sub == "disable", actor); err != nil {
			return fail(err)
		}
		fmt.Fprintf(env.Stdout, "%s %sd (audited)\n", *id, sub)
		applies()
	case "list":
		st, err := ps.Load(ctx)
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "PARTNER\tROLE\tSTATE\tKEYS\tNAME\t(state version %d)\n", st.Version)
		for _, p := range st.Partners {
			state := strings.Join(p.Environments, ",")
			if p.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", p.ID, p.Role, state, len(p.KeyIDs), p.Name)
		}
		_ = tw.Flush()
	case "import":
		applies()
	}
	return 0
}
