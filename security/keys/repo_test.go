package keys

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoKeysInRepository fails when a configuration file or a key file in
// the repository holds key material: a secret-sounding setting (secret, key,
// password, token, private…) with a long hex or base64 value, a PEM private
// key, or a *.key file outside testdata.
// secretSetting is a secret-sounding setting with a long hex or base64 value.
var secretSetting = regexp.MustCompile(`(?i)(secret|key|password|passwd|token|private)[a-z_]*\s*[:=]\s*["']?([0-9a-f]{32,}|[A-Za-z0-9+/_-]{40,}={0,2})\b`)

func TestSecretSetting(t *testing.T) {
	for line, want := range map[string]bool{
		"  hmac_secret: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f": true,
		`  api_token: "dGhpcyBpcyBhIHRva2VuIHRoYXQgaXMgbG9uZyBlbm91Z2g="`:                 true,
		"  key_ids: [fh01-k20261127093000]":                                               false,
		"  digest: 66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0":      false,
		"  key_dir: data/keys": false,
	} {
		if got := secretSetting.MatchString(line); got != want {
			t.Errorf("%q: %v", line, got)
		}
	}
}

func TestNoKeysInRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	pemKey := regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)
	checked := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", ".ci-work", "testdata", "data":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".key") {
			t.Errorf("%s: key file in the repository", rel)
			return nil
		}
		inConfigs := strings.HasPrefix(filepath.ToSlash(rel), "configs/") || strings.HasPrefix(filepath.ToSlash(rel), "deploy/")
		if !inConfigs || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".env")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		checked++
		if pemKey.Match(b) {
			t.Errorf("%s: holds a PEM private key", rel)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			if m := secretSetting.FindStringSubmatch(line); m != nil {
				t.Errorf("%s: %s holds a %d-character value that looks like key material", rel, m[1], len(m[2]))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Skip("no configuration files found (not run from the repository)")
	}
}
