package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/security/keys"
)

// TestPartnerCommandsWriteThroughTheStore: with the cluster profile's
// read-only env key provider, partner add, rotate-key, disable and enable
// write the state store (secrets sealed under the field keys) and the audit
// chain; add appends to the registry file keeping its comments; a failed
// change is audited as failed.
func TestPartnerCommandsWriteThroughTheStore(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "partners")
	if err := os.MkdirAll(reg, 0o700); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile("../../configs/partners/funeral/funeral-homes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reg, "funeral-homes.yaml"), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"field/k20260101000000": 16, keys.BlindName: 32, keys.AuditName: 32} {
		t.Setenv(keys.EnvName(name), strings.Repeat("ab", n))
	}
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + filepath.Join(dir, "state.db") +
		"\nsecurity:\n  key_provider: env\n  generate_keys: false\nfuneral:\n  partners_dir: " + reg + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{args[0], args[1], "--config", cfgPath}, args[2:]...)...)
		if code != want {
			t.Fatalf("mzhub %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out
	}
	out := run(0, "partner", "add", "--id", "funeral.fh16", "--name", "新殡仪馆", "--role", "funeral_home",
		"--allow-ip", "10.1.2.3", "--booking-url", "https://fh16.example/booking", "--booking-key-id", "hub-fh16")
	secret := regexp.MustCompile(`secret:\s+([0-9a-f]{64})`).FindStringSubmatch(out)
	if secret == nil {
		t.Fatalf("no secret in %q", out)
	}
	edited, _ := os.ReadFile(filepath.Join(reg, "funeral-homes.yaml"))
	if !strings.HasPrefix(string(edited), strings.TrimRight(string(orig), "\n")) || !strings.Contains(string(edited), "id: funeral.fh16") ||
		strings.Contains(string(edited), secret[1]) {
		t.Fatalf("registry file after add:\n%s", edited)
	}
	db, _ := os.ReadFile(filepath.Join(dir, "state.db"))
	if strings.Contains(string(db), secret[1]) {
		t.Fatal("the secret is in the state database in plaintext")
	}
	run(0, "partner", "rotate-key", "--id", "funeral.fh01")
	run(0, "partner", "disable", "--id", "funeral.fh16")
	if out := run(0, "partner", "list"); !regexp.MustCompile(`funeral\.fh16\s+funeral_home\s+disabled\s+1`).MatchString(out) ||
		!regexp.MustCompile(`funeral\.fh01\s+funeral_home\s+\S+\s+1`).MatchString(out) {
		t.Fatalf("list:\n%s", out)
	}
	run(0, "partner", "enable", "--id", "funeral.fh16")
	run(1, "partner", "disable", "--id", "funeral.nobody")
	out = run(0, "audit", "list", "--json")
	for _, want := range []string{`"action": "partner.add"`, `"action": "partner.rotate_key"`, `"action": "partner.disable"`,
		`"action": "partner.enable"`, `"action": "partner.import"`, `"outcome": "failure"`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %s:\n%s", want, out)
		}
	}
}
