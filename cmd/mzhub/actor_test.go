package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/hub"
)

// TestCLIActorIsTheProcessUser: SUDO_USER and USER are set by whoever runs
// the command; the audit log names the user the process runs as and keeps
// the variables only as claims.
func TestCLIActorIsTheProcessUser(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + filepath.Join(dir, "state.db") + "\nsecurity:\n  key_provider: file\n  key_dir: " + filepath.Join(dir, "keys") + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"SUDO_USER": "mallory", "USER": "mallory"}
	run := func(args ...string) string {
		t.Helper()
		var out, errb syncBuffer
		env := &cliEnv{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }, Logger: hub.NewLogger(&errb, "info", "text")}
		if code := dispatch(context.Background(), env, args); code != 0 {
			t.Fatalf("mzhub %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	run("user", "create-admin", "--config", cfgPath, "--role", "security-admin")
	out := run("audit", "list", "--config", cfgPath, "--action", "account.create", "--json")
	me := processUser()
	want := `"actor": "cli:` + me + ` (claims sudo_user=mallory user=mallory)"`
	if me == "mallory" || !strings.Contains(out, want) {
		t.Fatalf("audit list: want %s in\n%s", want, out)
	}
	if strings.Contains(out, `"actor": "cli:mallory"`) {
		t.Fatalf("the claimed user is recorded as the actor:\n%s", out)
	}
}
