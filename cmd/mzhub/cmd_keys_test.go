package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/store"
)

// TestKeysRetireAfterReencrypt: a field-key rotation on a state holding a
// TOTP secret and a partner secret; the old key cannot be retired while a
// value needs it; after `keys reencrypt` it can, nothing in the database or
// the data directory names it any more, and the TOTP enrollment and the
// partner still work without it.
func TestKeysRetireAfterReencrypt(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "partners")
	if err := os.MkdirAll(reg, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mzhub.yaml")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + filepath.Join(dir, "mzhub.db") +
		"\nsecurity:\n  key_provider: file\n  key_dir: " + filepath.Join(dir, "keys") + "\nfuneral:\n  partners_dir: " + reg + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	run := cliWith(t, cfgPath)
	run(0, "keys", "init")
	run(0, "user", "add", "--name", "aud1", "--role", "auditor")
	run(0, "user", "totp-enroll", "--name", "aud1")
	run(0, "partner", "add", "--id", "funeral.fh16", "--name", "新殡仪馆", "--role", "funeral_home", "--allow-ip", "10.1.2.3")
	retireAfterRotation(t, cfgPath, dir, filepath.Join(dir, "mzhub.db"), 2)
	// Both secrets open without the old key.
	if out := run(0, "partner", "list"); !strings.Contains(out, "funeral.fh16") {
		t.Fatalf("partner list: %s", out)
	}
	if out := run(0, "user", "totp-enroll", "--name", "aud1"); !strings.Contains(out, "otpauth://") {
		t.Fatalf("re-enroll: %s", out)
	}
}

// cliWith returns a runner of mzhub subcommands with --config cfgPath,
// failing the test on another exit code than want.
func cliWith(t *testing.T, cfgPath string) func(want int, args ...string) string {
	return func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{args[0], args[1], "--config", cfgPath}, args[2:]...)...)
		if code != want {
			t.Fatalf("mzhub %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out + errOut
	}
}

var activeKey = regexp.MustCompile(`field/(k\d{14}) \(active\): (\d+) values`)

// retireAfterRotation rotates the field key of the hub configured at
// cfgPath, checks that the old key cannot be retired before `keys
// reencrypt` (it seals at least minValues values) and can after it, and
// that then no table of the SQLite state at dbPath and no file under
// dataDir (but the database's own files) holds a value sealed under it.
func retireAfterRotation(t *testing.T, cfgPath, dataDir, dbPath string, minValues int) {
	t.Helper()
	run := cliWith(t, cfgPath)
	m := activeKey.FindStringSubmatch(run(0, "keys", "status"))
	if m == nil {
		t.Fatal("keys status names no active key")
	}
	old := m[1]
	run(0, "keys", "rotate")
	if out := run(1, "keys", "retire", old); !strings.Contains(out, "still in use") {
		t.Fatalf("retire before reencrypt: %s", out)
	}
	// A value sealed under old starts "old:" (Ring.Encrypt) or holds the
	// envelope's header naming it (Ring.Seal); the audit log names the key
	// too, as an object, which is no sealed value.
	sealedForms := [][]byte{[]byte(old + ":"), append([]byte{1, byte(len(old))}, old...)}
	if n := countRows(t, dbPath, sealedForms); n < minValues {
		t.Fatalf("%d stored values name %s before re-encryption, want at least %d (is the scan broken?)", n, old, minValues)
	}
	run(0, "keys", "reencrypt")
	if out := run(0, "keys", "reencrypt"); strings.Contains(out, "values moved") && regexp.MustCompile(`: [1-9]\d* values moved`).MatchString(out) {
		t.Fatalf("a second reencrypt moved values again:\n%s", out)
	}
	run(0, "keys", "retire", old)
	if _, err := os.Stat(filepath.Join(dataDir, "keys", "field", old+".key")); err == nil {
		t.Fatal("the retired key's file is still there")
	}
	out := run(0, "keys", "status", "--verify")
	if strings.Contains(out, old) || strings.Contains(out, "unreadable") {
		t.Fatalf("status after retire:\n%s", out)
	}
	if n := countRows(t, dbPath, sealedForms); n != 0 {
		t.Fatalf("%d stored values still name the retired key %s", n, old)
	}
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, dbPath) {
			return err
		}
		b, err := os.ReadFile(p)
		for _, f := range sealedForms {
			if err == nil && bytes.Contains(b, f) {
				t.Errorf("%s still holds a value sealed under the retired key", p)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := run(0, "audit", "list", "--action", "keys.retire"); !strings.Contains(out, "field/"+old) || !strings.Contains(out, "failure") || !strings.Contains(out, "success") {
		t.Fatalf("retire attempts not audited with their outcome:\n%s", out)
	}
}

// countRows counts the values of every column of every table of the SQLite
// database at path that contain one of needles.
func countRows(t *testing.T, path string, needles [][]byte) int {
	t.Helper()
	ctx := context.Background()
	cfg := store.DefaultConfig()
	cfg.Path = path
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	total := 0
	for _, tb := range tables {
		cols, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, tb)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for cols.Next() {
			var n string
			_ = cols.Scan(&n)
			names = append(names, n)
		}
		cols.Close()
		for _, c := range names {
			for _, needle := range needles {
				var n int
				q := `SELECT COUNT(*) FROM "` + tb + `" WHERE instr(CAST("` + c + `" AS BLOB), CAST(? AS BLOB)) > 0`
				if err := db.QueryRowContext(ctx, q, needle).Scan(&n); err != nil {
					t.Fatalf("%s.%s: %v", tb, c, err)
				}
				if n > 0 {
					t.Logf("%s.%s: %d values name %q", tb, c, n, needle)
				}
				total += n
			}
		}
	}
	return total
}

// demoKeysRetire takes the state a demo left in dir (its month paid, its
// funeral records pushed) through a field-key rotation, re-encryption and
// the old key's retirement (retireAfterRotation).
func demoKeysRetire(t *testing.T, dir string) {
	cfgPath := filepath.Join(t.TempDir(), "keys.yaml")
	db := filepath.Join(dir, "mzhub.db")
	cfgText := "data_dir: " + dir + "\nstore:\n  driver: sqlite\n  path: " + db +
		"\nsecurity:\n  key_provider: file\n  generate_keys: false\n  key_dir: " + filepath.Join(dir, "keys") + "\n"
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	retireAfterRotation(t, cfgPath, dir, db, 100)
}
