package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/security/keys"
)

func readSet(t *testing.T, path string) keys.Set {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.ReadEnvFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeysGenerateClusterSet: `mzhub keys generate` writes a complete key
// set the environment provider accepts (keys.Init finds nothing missing),
// never prints key material, keeps an existing set with --from, refuses to
// replace one without it, and --rotate-field adds only a newer field key.
func TestKeysGenerateClusterSet(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "mzhub-keys.env")
	code, stdout, stderr := runCLI(t, "keys", "generate", "--out", out)
	if code != 0 {
		t.Fatalf("generate: exit %d: %s", code, stderr)
	}
	set := readSet(t, out)
	for _, v := range set {
		if strings.Contains(stdout+stderr, hex.EncodeToString(v)) {
			t.Fatal("key material printed")
		}
	}
	// The replicas' environment provider finds every key it needs.
	var environ []string
	b, _ := os.ReadFile(out)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, keys.EnvPrefix) {
			environ = append(environ, line)
		}
	}
	created, err := keys.Init(context.Background(), keys.NewEnv(func() []string { return environ }), time.Now())
	if err != nil || len(created) != 0 {
		t.Fatalf("env provider over the generated set: created %v, err %v", created, err)
	}
	if _, err := keys.SM2(context.Background(), keys.NewEnv(func() []string { return environ }), keys.SM2SignName); err != nil {
		t.Fatalf("SM2 signing key: %v", err)
	}

	// Replacing a set by mistake is refused.
	if code, _, stderr := runCLI(t, "keys", "generate", "--out", out); code == 0 || !strings.Contains(stderr, "--from") {
		t.Fatalf("second generate without --from: exit %d: %s", code, stderr)
	}
	// Completing an already complete set changes nothing.
	if code, stdout, stderr := runCLI(t, "keys", "generate", "--from", out, "--out", out); code != 0 || !strings.Contains(stdout, "nothing added") {
		t.Fatalf("generate --from: exit %d: %s %s", code, stdout, stderr)
	}
	again := readSet(t, out)
	if len(again) != len(set) {
		t.Fatalf("keys changed: %v vs %v", again.Names(), set.Names())
	}
	for n, v := range set {
		if !bytes.Equal(again[n], v) {
			t.Fatalf("%s changed", n)
		}
	}
	// Rotation adds a field key that sorts last (the active one).
	rotated := filepath.Join(dir, "rotated.env")
	if code, _, stderr := runCLI(t, "keys", "generate", "--from", out, "--out", rotated, "--rotate-field"); code != 0 {
		t.Fatalf("rotate: exit %d: %s", code, stderr)
	}
	r := readSet(t, rotated)
	var oldFields, newFields []string
	for _, n := range set.Names() {
		if strings.HasPrefix(n, keys.FieldPrefix) {
			oldFields = append(oldFields, n)
		}
	}
	for _, n := range r.Names() {
		if strings.HasPrefix(n, keys.FieldPrefix) {
			newFields = append(newFields, n)
		}
		if v, ok := set[n]; ok && !bytes.Equal(v, r[n]) {
			t.Fatalf("rotation changed %s", n)
		}
	}
	if len(newFields) != len(oldFields)+1 || newFields[len(newFields)-1] <= oldFields[len(oldFields)-1] {
		t.Fatalf("field keys before %v, after %v", oldFields, newFields)
	}

	// The Kubernetes form is a Secret with the same variables.
	manifest := filepath.Join(dir, "secret.yaml")
	if code, _, stderr := runCLI(t, "keys", "generate", "--from", out, "--out", manifest, "--format", "k8s-secret"); code != 0 {
		t.Fatalf("k8s-secret: exit %d: %s", code, stderr)
	}
	mb, _ := os.ReadFile(manifest)
	var sec struct {
		Kind       string `yaml:"kind"`
		Metadata   struct{ Name string }
		StringData map[string]string `yaml:"stringData"`
	}
	if err := yaml.Unmarshal(mb, &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Kind != "Secret" || sec.Metadata.Name != "mzhub-keys" || len(sec.StringData) != len(set) {
		t.Fatalf("secret: kind %q name %q %d keys", sec.Kind, sec.Metadata.Name, len(sec.StringData))
	}
	for n, v := range set {
		if sec.StringData[keys.EnvName(n)] != hex.EncodeToString(v) {
			t.Fatalf("secret: %s differs", keys.EnvName(n))
		}
	}
}
