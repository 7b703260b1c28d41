package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

// runKeysGenerate makes or extends a cluster's key set in the environment
// provider's format. Key material goes only to the output file (mode
// 0600, written to a temporary name and renamed), never to the terminal.
func runKeysGenerate(env *cliEnv, args []string) int {
	fset := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fset.SetOutput(env.Stderr)
	out := fset.String("out", "", "file to write the key set to (mode 0600); required")
	from := fset.String("from", "", "existing key set (env file) to keep and complete; may equal --out")
	rotate := fset.Bool("rotate-field", false, "add a new field-encryption key (the active one from the replicas' next start)")
	format := fset.String("format", "env", "env (MZHUB_KEY_*=hex lines: systemd EnvironmentFile, kubectl --from-env-file) or k8s-secret (a Secret manifest)")
	secret := fset.String("secret-name", "mzhub-keys", "the Secret's name with --format k8s-secret")
	fset.Usage = func() {
		fmt.Fprintln(env.Stderr, "Usage: mzhub keys generate --out FILE [--from FILE] [--rotate-field] [--format env|k8s-secret]")
		fset.PrintDefaults()
	}
	if code, ok := parseFlags(fset, args); !ok {
		return code
	}
	if *out == "" || fset.NArg() > 0 {
		fset.Usage()
		return 2
	}
	if *format != "env" && *format != "k8s-secret" {
		fmt.Fprintf(env.Stderr, "mzhub keys generate: --format %q: want env or k8s-secret\n", *format)
		return 2
	}
	set := keys.Set{}
	if *from != "" {
		f, err := os.Open(*from)
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub keys generate: %v\n", err)
			return 1
		}
		set, err = keys.ReadEnvFile(f)
		_ = f.Close()
		if err != nil {
			fmt.Fprintf(env.Stderr, "mzhub keys generate: %s: %v\n", *from, err)
			return 1
		}
	} else if _, err := os.Stat(*out); err == nil {
		fmt.Fprintf(env.Stderr, "mzhub keys generate: %s exists: pass --from %s to keep and complete it (replacing a cluster's keys makes its encrypted data unreadable)\n", *out, *out)
		return 1
	} else if !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(env.Stderr, "mzhub keys generate: %v\n", err)
		return 1
	}
	added, err := set.Complete(time.Now(), *rotate)
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys generate: %v\n", err)
		return 1
	}
	var b bytes.Buffer
	if *format == "k8s-secret" {
		err = set.WriteSecret(&b, *secret)
	} else {
		err = set.WriteEnvFile(&b)
	}
	if err == nil {
		err = ownerfile.Write(*out, b.Bytes())
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mzhub keys generate: %v\n", err)
		return 1
	}
	for _, n := range added {
		fmt.Fprintf(env.Stdout, "added %s (%s)\n", n, keys.EnvName(n))
	}
	if len(added) == 0 {
		fmt.Fprintln(env.Stdout, "all keys present; nothing added")
	}
	fmt.Fprintf(env.Stdout, "wrote %d keys to %s (mode 0600); give every replica this set and restart them one by one\n", len(set), *out)
	if *rotate {
		fmt.Fprintln(env.Stdout, "after every replica runs with the new set: mzhub keys reencrypt --config FILE (with the same environment)")
	}
	return 0
}
