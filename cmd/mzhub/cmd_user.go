package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/security/tlcp"
)

func init() {
	register(command{name: "user", summary: "console accounts: create-admin, add, disable, enable, unlock, reset-password, list, totp-enroll, cert-add, cert-remove, cert-list", run: runUser})
}

func userUsage(env *cliEnv) {
	fmt.Fprintln(env.Stderr, `Usage:
  mzhub user create-admin [--config FILE] --role security-admin|auditor|operator [--name NAME] [--display NAME]
  mzhub user add          [--config FILE] --name NAME --role ROLE [--display NAME]
  mzhub user disable|enable|unlock|reset-password [--config FILE] --name NAME
  mzhub user list         [--config FILE] [--json]
  mzhub user totp-enroll  [--config FILE] --name NAME [--algorithm SHA1|SM3]
  mzhub user cert-add     [--config FILE] --name NAME --cert FILE
  mzhub user cert-remove  [--config FILE] --name NAME (--cert FILE | --fingerprint HEX)
  mzhub user cert-list    [--config FILE] [--name NAME] [--json]

There is no default password. create-admin (first run) and add print a one-time password:
hand it over through a separate channel; it must be changed at first login. Every change is
audited with the operating-system user as actor.

cert-add maps an SM2 client certificate (PEM, e.g. exported from the user's USB key) to the
account: a login over the console's TLCP listener (security.console.tlcp) presenting it, with
the password, satisfies the second factor instead of TOTP. When security.console.tlcp.client_ca_file
is set the certificate must chain to it. A certificate maps to one account only.`)
}

func runUser(ctx context.Context, env *cliEnv, args []string) int {
	sub, code, ok := subcommand(env, args, userUsage)
	if !ok {
		return code
	}
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded profile)")
	name := fs.String("name", "", "user name (3-32 characters of a-z 0-9 . _ -)")
	role := fs.String("role", "", "operator, security-admin or auditor")
	display := fs.String("display", "", "display name")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	alg := fs.String("algorithm", accounts.TOTPSHA1, "totp-enroll: SHA1 (every authenticator app) or SM3 (HMAC-SM3 tokens)")
	certFile := fs.String("cert", "", "cert-add, cert-remove: the client certificate (PEM)")
	fp := fs.String("fingerprint", "", "cert-remove: the certificate's SM3 fingerprint (hex, as cert-list shows)")
	fs.Usage = func() { userUsage(env); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	switch sub {
	case "create-admin", "add", "disable", "enable", "unlock", "reset-password", "list", "totp-enroll", "cert-add", "cert-remove", "cert-list":
	default:
		userUsage(env)
		return 2
	}
	var r accounts.Role
	if sub == "create-admin" || sub == "add" {
		var err error
		if r, err = accounts.ParseRole(*role); err != nil {
			fmt.Fprintf(env.Stderr, "mzhub user %s: --role: %v\n", sub, err)
			return 2
		}
		if *name == "" && sub == "create-admin" {
			*name = map[accounts.Role]string{accounts.RoleSecurityAdmin: "secadmin", accounts.RoleAuditor: "auditor", accounts.RoleOperator: "operator"}[r]
		}
	}
	if sub == "cert-add" && *certFile == "" || sub == "cert-remove" && (*certFile == "") == (*fp == "") {
		fmt.Fprintf(env.Stderr, "mzhub user %s: give the certificate with --cert FILE%s\n", sub, map[bool]string{true: " or --fingerprint HEX (one of them)"}[sub == "cert-remove"])
		return 2
	}
	if sub != "list" && sub != "cert-list" && *name == "" {
		fmt.Fprintf(env.Stderr, "mzhub user %s: --name is required\n", sub)
		return 2
	}
	d, err := openSecDeps(ctx, env, *cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub user %s: %v\n", sub, err)
		return 1
	}
	defer d.close()
	var opts []accounts.Option
	if ring, err := fieldcrypt.LoadRing(ctx, d.keys); err == nil {
		opts = append(opts, accounts.WithSealer(ring)) // seals TOTP secrets
	}
	m, err := accounts.New(ctx, d.db, d.cfg.Security.Console, d.audit, opts...)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub user %s: %v\n", sub, err)
		return 1
	}
	actor := accounts.Actor{Name: cliActor(env)}
	var otp string
	switch sub {
	case "create-admin", "add":
		otp, err = m.CreateUser(ctx, actor, *name, *display, r)
	case "disable":
		err = m.SetDisabled(ctx, actor, *name, true)
	case "enable":
		err = m.SetDisabled(ctx, actor, *name, false)
	case "unlock":
		err = m.Unlock(ctx, actor, *name)
	case "reset-password":
		otp, err = m.ResetPassword(ctx, actor, *name)
	case "totp-enroll":
		en, err := m.EnrollTOTP(ctx, actor, *name, strings.ToUpper(*alg))
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub user totp-enroll: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "user %s: TOTP (%s, 6 digits, 30 s) enrolled; shown once, hand it over in person:\nsecret: %s\nuri:    %s\n",
			*name, en.Algorithm, en.Secret, en.URI)
		return 0
	case "cert-add", "cert-remove":
		var c accounts.ClientCert
		if *certFile != "" {
			b, err := os.ReadFile(*certFile)
			if err == nil {
				ca := ""
				if sub == "cert-add" {
					ca = d.cfg.Security.Console.TLCP.ClientCAFile
				}
				c, err = tlcp.ReadCert(b, ca)
			}
			if err != nil {
				fmt.Fprintf(env.Stderr, "mzhub user %s: --cert: %v\n", sub, err)
				return 1
			}
		} else {
			c.Fingerprint = strings.ToLower(strings.TrimSpace(*fp))
		}
		if sub == "cert-add" {
			err = m.AddCert(ctx, actor, *name, c)
		} else {
			err = m.RemoveCert(ctx, actor, *name, c.Fingerprint)
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub user %s: %v\n", sub, err)
			return 1
		}
		if sub == "cert-add" {
			fmt.Fprintf(env.Stdout, "user %s: certificate mapped (audited)\nsubject:     %s\nfingerprint: %s (SM3)\nnot after:   %s\n",
				*name, c.Subject, c.Fingerprint, c.NotAfter.Format(time.RFC3339))
		} else {
			fmt.Fprintf(env.Stdout, "user %s: certificate %s no longer maps (audited)\n", *name, c.Short())
		}
		return 0
	case "cert-list":
		cs, err := m.Certs(ctx, *name)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub user cert-list: %v\n", err)
			return 1
		}
		if *asJSON {
			if cs == nil {
				cs = []accounts.CertMapping{}
			}
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(cs)
			return 0
		}
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tFINGERPRINT (SM3)\tNOT AFTER\tSUBJECT")
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Username, c.Fingerprint, c.NotAfter.Format(time.RFC3339), c.Subject)
		}
		_ = tw.Flush()
		return 0
	case "list":
		us, err := m.List(ctx)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub user list: %v\n", err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(us)
			return 0
		}
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tROLE\tSTATE\tPASSWORD\tLAST LOGIN\tDISPLAY NAME")
		for _, u := range us {
			state := "active"
			switch {
			case u.Disabled:
				state = "disabled"
			case u.LockedUntil.After(time.Now()):
				state = "locked"
			}
			pw := "ok"
			switch {
			case u.MustChange:
				pw = "one-time"
			case u.PasswordExpired:
				pw = "expired"
			}
			last := "-"
			if !u.LastLogin.IsZero() {
				last = u.LastLogin.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, state, pw, last, u.DisplayName)
		}
		_ = tw.Flush()
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub user %s: %v\n", sub, err)
		return 1
	}
	if otp != "" {
		fmt.Fprintf(env.Stdout, "user %s: one-time password (shown once; must be changed at first login):\n%s\n", *name, otp)
		return 0
	}
	fmt.Fprintf(env.Stdout, "user %s: %s done (audited)\n", *name, sub)
	return 0
}
