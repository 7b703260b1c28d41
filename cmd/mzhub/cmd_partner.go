package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

func init() {
	register(command{name: "partner", summary: "funeral partners: add, rotate-key, disable, enable, list (credentials and allowlists)", run: runPartner})
}

func partnerUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, `Usage:
  mzhub partner add --id funeral.fh16 --name NAME --role funeral_home|cemetery|columbarium
                    [--env sandbox[,production]] [--allow-ip IP|CIDR,...] [--division 3101xx]
  mzhub partner rotate-key --id ID [--drop-old]
  mzhub partner disable|enable --id ID
  mzhub partner list

Common flags: --config FILE (keys and paths from the hub configuration), --dir DIR (registry
directory, default <paths.partners>/funeral). The secret is printed once: hand it to the
integrator through a separate channel; only its key id is written to the registry file.`)
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
	dir := fs.String("dir", "", "registry directory (default <paths.partners>/funeral)")
	id := fs.String("id", "", "partner id: funeral.<name>, cemetery.<name> or columbarium.<name>")
	name := fs.String("name", "", "institution name")
	role := fs.String("role", "", "funeral_home, cemetery or columbarium")
	envs := fs.String("env", "sandbox", "environments, comma separated: sandbox, production")
	allow := fs.String("allow-ip", "", "allowed source addresses or CIDR prefixes, comma separated")
	division := fs.String("division", "", "district code 3101xx")
	dropOld := fs.Bool("drop-old", false, "rotate-key: revoke the previous keys at once")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	if *dir == "" {
		*dir = filepath.Join(cfg.Paths.Partners, "funeral")
	}
	kp, err := keys.New(cfg.Security.KeyProvider, cfg.Security.KeyDir)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return 1
	}
	now := time.Now()
	show := func(iss funeral.Issued) {
		fmt.Fprintf(env.Stdout, "partner:  %s\nkey id:   %s\nsecret:   %s\n\nThe secret is shown once. Deliver it through a separate channel; see docs/onboarding.md.\n",
			iss.PartnerID, iss.KeyID, iss.SecretHex)
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
	need := func(v, flagName string) bool {
		if v == "" {
			fmt.Fprintf(env.Stderr, "mzhub partner %s: --%s is required\n", sub, flagName)
			return false
		}
		return true
	}
	switch sub {
	case "add":
		if !need(*id, "id") || !need(*name, "name") || !need(*role, "role") {
			return 2
		}
		iss, err := funeral.AddPartner(ctx, *dir, kp, funeral.Partner{ID: *id, Name: *name, Role: funeral.Role(*role), DivisionCode: *division,
			Environments: split(*envs), AllowIPs: split(*allow)}, now)
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub partner add:", err)
			return 1
		}
		show(iss)
	case "rotate-key":
		if !need(*id, "id") {
			return 2
		}
		iss, err := funeral.RotateKey(ctx, *dir, kp, *id, *dropOld, now)
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub partner rotate-key:", err)
			return 1
		}
		show(iss)
		if !*dropOld {
			fmt.Fprintln(env.Stdout, "The previous keys stay valid until you run: mzhub partner rotate-key --drop-old (or edit key_ids).")
		}
	case "disable", "enable":
		if !need(*id, "id") {
			return 2
		}
		if err := funeral.SetDisabled(*dir, *id, sub == "disable"); err != nil {
			fmt.Fprintf(env.Stderr, "mzhub partner %s: %v\n", sub, err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%s %sd\n", *id, sub)
	case "list":
		reg, err := funeral.LoadRegistry(*dir)
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub partner list:", err)
			return 1
		}
		for _, p := range reg.Partners() {
			state := strings.Join(p.Environments, ",")
			if p.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(env.Stdout, "%-22s %-13s %-20s keys=%d  %s\n", p.ID, p.Role, state, len(p.KeyIDs), p.Name)
		}
	default:
		fmt.Fprintf(env.Stderr, "mzhub partner: unknown subcommand %q\n", sub)
		partnerUsage(env)
		return 2
	}
	return 0
}
