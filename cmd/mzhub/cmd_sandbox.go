package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/conformance"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

func init() {
	register(command{name: "sandbox", summary: "run the partner API's sandbox locally (/sandbox/partner/v1/, its own store) with a ready partner", run: runSandbox})
}

// Files of a local sandbox's directory.
const (
	// sandboxEnvFile holds the partner's credentials and the sandbox's
	// address as shell variables (0600): `. DIR/partner.env`.
	sandboxEnvFile = "partner.env"
	// sandboxRegistryDir holds the partner's registry entry, which
	// `mzhub conformance --role pusher --sandbox DIR` reads.
	sandboxRegistryDir = "registry"
	// hostedSandbox is the bureau's hosted sandbox (the spec's server).
	hostedSandbox = "https://mzhub.mca.sh.gov.cn/sandbox/partner/v1/"
	// sandboxListenEnv overrides --listen's default (tests, a busy port).
	sandboxListenEnv = "MZHUB_SANDBOX_LISTEN"
)

// runSandbox serves the partner API's sandbox on this machine as the
// hosted hub serves it, for an integrator: its own store in --dir, one
// partner with a signing key (kept in DIR/partner.env across restarts),
// and it prints where everything is and the next command to run.
func runSandbox(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	defListen := "127.0.0.1:18480"
	if v := env.Getenv(sandboxListenEnv); v != "" {
		defListen = v
	}
	dir := fs.String("dir", "sandbox", "the sandbox's directory: its store, the partner's registry entry and credentials")
	listen := fs.String("listen", defListen, "address to serve on (default from "+sandboxListenEnv+" when set)")
	id := fs.String("partner", "funeral.fh90", "partner id on first start: funeral.<name>, cemetery.<name> or columbarium.<name>")
	name := fs.String("name", "沙箱殡仪馆", "institution name on first start")
	role := fs.String("role", "", "on first start: funeral_home, cemetery or columbarium (default from the id)")
	allow := fs.String("allow-ip", "127.0.0.1,::1", "on first start: addresses or CIDR prefixes allowed to call, comma separated")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, `Usage: mzhub sandbox [--dir DIR] [--listen HOST:PORT] [--partner ID --name NAME --role ROLE --allow-ip LIST]

Serves the funeral partner API's sandbox on this machine as the hosted one runs
(`+hostedSandbox+`): the same operations under /sandbox/partner/v1/, behind the
hub's signature check, over a store of its own (DIR/`+funeral.SandboxDBFile+`). The first start
registers one partner and issues its key; DIR/partner.env keeps them (0600) for the next starts.
The secret is never printed: load it with ". DIR/partner.env". Runs until SIGINT or SIGTERM.`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintln(env.Stderr, "mzhub sandbox:", err)
		return 1
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fail(err)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fail(err)
	}
	cred, err := readSandboxEnv(filepath.Join(abs, sandboxEnvFile))
	if err != nil {
		return fail(err)
	}
	regDir := filepath.Join(abs, sandboxRegistryDir)
	var p funeral.Partner
	if cred.keyID == "" {
		// First start: register the partner and issue its key.
		r := funeral.Role(*role)
		if r == "" {
			r = roleOf(*id)
		}
		p = funeral.Partner{ID: *id, Name: *name, Role: r, Environments: []string{funeral.EnvSandbox}, AllowIPs: splitList(*allow)}
		short := p.ID[strings.IndexByte(p.ID, '.')+1:]
		cred = sandboxCred{partner: p.ID, keyID: short + "-" + keys.NewKID(time.Now()) + "-" + hex.EncodeToString(keys.Random(3)), secret: keys.Random(32)}
		p.KeyIDs = []string{cred.keyID}
		if err := p.Validate(); err != nil {
			return fail(err)
		}
		if err := writeSandboxRegistry(regDir, p); err != nil {
			return fail(err)
		}
	} else {
		reg, err := funeral.LoadRegistry(regDir)
		if err != nil {
			return fail(fmt.Errorf("%s holds credentials but no readable registry: %w (remove the directory to start afresh)", *dir, err))
		}
		var ok bool
		if p, ok = reg.Partner(cred.partner); !ok {
			return fail(fmt.Errorf("%s: partner %s of %s is not in %s (remove the directory to start afresh)", *dir, cred.partner, sandboxEnvFile, regDir))
		}
		for _, f := range []string{"partner", "name", "role", "allow-ip"} {
			if set[f] && !(f == "partner" && *id == p.ID) {
				return fail(fmt.Errorf("--%s: %s already holds partner %s; use another --dir for another partner", f, *dir, p.ID))
			}
		}
	}
	s, err := conformance.StartLocal(ctx, conformance.LocalOptions{Listen: *listen, DataDir: abs, Partner: p,
		KeyID: cred.keyID, Secret: cred.secret, Logger: env.Logger})
	if err != nil {
		return fail(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	envPath := filepath.Join(abs, sandboxEnvFile)
	if err := writeSandboxEnv(envPath, cred, "http://"+s.Addr); err != nil {
		return fail(err)
	}
	wd, _ := os.Getwd()
	rel := func(p string) string {
		if r, err := filepath.Rel(wd, p); err == nil && wd != "" && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	out := env.Stdout
	fmt.Fprintf(out, "mzhub sandbox: the partner API's sandbox on this machine, as the hosted one runs\n")
	fmt.Fprintf(out, "  API:      %s/   (hosted: %s)\n", s.URL(), hostedSandbox)
	fmt.Fprintf(out, "            sign the whole path you request, /sandbox included\n")
	fmt.Fprintf(out, "  spec:     http://%s/docs/api/partner.yaml\n", s.Addr)
	fmt.Fprintf(out, "  partner:  %s (%s, %s), calls from %s\n", p.ID, p.Name, p.Role, strings.Join(p.AllowIPs, ", "))
	fmt.Fprintf(out, "  key id:   %s\n", cred.keyID)
	fmt.Fprintf(out, "  secret:   MZ_SECRET_HEX in %s (0600; not printed)\n", rel(envPath))
	fmt.Fprintf(out, "  store:    %s\n", rel(s.DBPath))
	fmt.Fprintf(out, "next: load the credentials, push your records (docs/onboarding.md, step 3), then check them:\n")
	fmt.Fprintf(out, "  . %s\n", rel(envPath))
	fmt.Fprintf(out, "  mzhub conformance --role pusher --sandbox %s --junit %s-push.xml\n", rel(abs), p.ID)
	fmt.Fprintln(out, "sandbox ready")
	<-ctx.Done()
	return 0
}

// sandboxCred is a local sandbox partner's signing key.
type sandboxCred struct {
	partner, keyID string
	secret         []byte
}

// readSandboxEnv reads DIR/partner.env; a missing file is no credentials.
func readSandboxEnv(path string) (sandboxCred, error) {
	vars, err := readEnvFile(path)
	if err != nil || len(vars) == 0 {
		return sandboxCred{}, err
	}
	c := sandboxCred{partner: vars["MZ_PARTNER"], keyID: vars["MZ_KEY_ID"]}
	c.secret, err = hex.DecodeString(vars["MZ_SECRET_HEX"])
	if err != nil || len(c.secret) != 32 || c.partner == "" || c.keyID == "" {
		return sandboxCred{}, fmt.Errorf("%s: want MZ_PARTNER, MZ_KEY_ID and a 64-hex MZ_SECRET_HEX (remove the directory to start afresh)", path)
	}
	return c, nil
}

// writeSandboxEnv writes the credentials and the addresses as shell
// variables, readable by the owner only.
func writeSandboxEnv(path string, c sandboxCred, origin string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `mzhub sandbox`: the sandbox partner's credentials (keep MZ_SECRET_HEX private).\n")
	fmt.Fprintf(&b, "# Load with: . %s   Hosted sandbox: MZ_HUB_URL=https://mzhub.mca.sh.gov.cn with the bureau's key.\n", filepath.Base(path))
	fmt.Fprintf(&b, "# MZ_HUB_URL + the path you sign (/sandbox/partner/v1/...) is the URL to call;\n")
	fmt.Fprintf(&b, "# MZ_BASE_URL is the spec's server URL (append /partner/v1/..., sign the URL's whole path).\n")
	fmt.Fprintf(&b, "MZ_HUB_URL=%s\nMZ_BASE_URL=%s/sandbox\nMZ_PARTNER=%s\nMZ_KEY_ID=%s\nMZ_SECRET_HEX=%s\n",
		origin, origin, c.partner, c.keyID, hex.EncodeToString(c.secret))
	for _, v := range []string{"MZ_HUB_URL", "MZ_BASE_URL", "MZ_PARTNER", "MZ_KEY_ID", "MZ_SECRET_HEX"} {
		b.WriteString("export " + v + "\n")
	}
	return ownerfile.Write(path, []byte(b.String()))
}

// writeSandboxRegistry writes the partner's registry entry, the file a
// hub would hold in its funeral partners directory.
func writeSandboxRegistry(dir string, p funeral.Partner) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := yaml.Marshal(funeral.PartnerFile{Partners: []funeral.Partner{p}})
	if err != nil {
		return err
	}
	b = append([]byte("# The local sandbox's partner, written by `mzhub sandbox` (key secrets are in ../partner.env).\n"), b...)
	return os.WriteFile(filepath.Join(dir, "sandbox.yaml"), b, 0o600)
}

// roleOf guesses a partner's role from its id's prefix.
func roleOf(id string) funeral.Role {
	switch {
	case strings.HasPrefix(id, "cemetery."):
		return funeral.RoleCemetery
	case strings.HasPrefix(id, "columbarium."):
		return funeral.RoleColumbarium
	default:
		return funeral.RoleFuneralHome
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
