package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/store"
)

// TestSecurityCommands runs the security subcommands against a fresh
// embedded-profile state: first admin, audit verify, a direct edit of the
// SQLite file found by verify, export and its verification, keys.
func TestSecurityCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	dbPath := filepath.Join(dir, "state.db")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + dbPath + "\nsecurity:\n  key_provider: file\n  key_dir: " + filepath.Join(dir, "keys") + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append(args[:1:1], append([]string{args[1]}, append([]string{"--config", cfgPath}, args[2:]...)...)...)...)
		if code != want {
			t.Fatalf("mzhub %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out
	}

	out := run(0, "user", "create-admin", "--role", "security-admin")
	otp := regexp.MustCompile(`(?m)^(\S{16})$`).FindString(out)
	if otp == "" {
		t.Fatalf("no one-time password in %q", out)
	}
	run(1, "user", "create-admin", "--role", "security-admin") // exists
	run(0, "user", "add", "--name", "aud1", "--role", "auditor")
	run(2, "user", "add", "--name", "x1", "--role", "root")
	if out := run(0, "user", "list"); !strings.Contains(out, "secadmin") || !strings.Contains(out, "one-time") || strings.Contains(out, otp) {
		t.Fatalf("list: %s", out)
	}
	if out := run(0, "user", "totp-enroll", "--name", "aud1"); !strings.Contains(out, "otpauth://totp/mzhub:aud1?") || !strings.Contains(out, "algorithm=SHA1") {
		t.Fatalf("totp-enroll: %s", out)
	}
	run(1, "user", "totp-enroll", "--name", "aud1", "--algorithm", "MD5")
	run(0, "user", "disable", "--name", "aud1")

	if out := run(0, "audit", "verify"); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("verify: %s", out)
	}
	export := filepath.Join(dir, "audit.jsonl")
	out = run(0, "audit", "export", "--out", export)
	anchor := regexp.MustCompile(`anchor with the file: (\S+)`).FindStringSubmatch(out)
	if anchor == nil {
		t.Fatalf("no receipt: %s", out)
	}
	if out := run(0, "audit", "verify", "--anchor", anchor[1]); !strings.Contains(out, "holds") {
		t.Fatalf("anchor: %s", out)
	}
	run(1, "audit", "verify", "--anchor", "999:"+strings.Repeat("0", 64))
	if out := run(0, "audit", "verify", "--file", export); !strings.Contains(out, "OK") {
		t.Fatalf("verify export: %s", out)
	}
	if out := run(0, "audit", "list", "--action", "account.create"); !strings.Contains(out, "user:aud1") {
		t.Fatalf("list: %s", out)
	}

	// Edit a record directly in the SQLite file.
	cfg := store.DefaultConfig()
	cfg.Path = dbPath
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The append-only trigger refuses the edit; someone with file access
	// drops it first.
	if _, err := db.ExecContext(context.Background(), `UPDATE audit_log SET detail = 'role=operator' WHERE seq = 1`); err == nil {
		t.Fatal("audit_log accepted an UPDATE")
	}
	for _, q := range []string{`DROP TRIGGER audit_log_no_update`, `UPDATE audit_log SET detail = 'role=operator' WHERE seq = 1`} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if out := run(1, "audit", "verify"); !strings.Contains(out, "BROKEN at seq 1: edited") {
		t.Fatalf("verify after edit: %s", out)
	}

	// Keys.
	if out := run(0, "keys", "init"); !strings.Contains(out, "all keys present") {
		t.Fatalf("keys init: %s", out)
	}
	if out := run(0, "keys", "public-key"); !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public key: %s", out)
	}
	if out := run(0, "keys", "rotate"); !strings.Contains(out, "added field/k") {
		t.Fatalf("rotate: %s", out)
	}
	run(0, "keys", "reencrypt")
	for _, c := range []string{"audit", "user", "keys"} {
		if code, _, _ := runCLI(t, c, "bogus"); code != 2 {
			t.Fatalf("%s bogus: %d", c, code)
		}
	}
}
