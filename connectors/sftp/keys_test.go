package sftp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors"
)

// TestKeyErrorsSayHowToSetUp: a missing or unreadable key file, or a
// missing known_hosts file, fails with the commands that set it up.
func TestKeyErrorsSayHowToSetUp(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		set  func(*Config)
		say  []string
	}{
		{"missing private key", func(c *Config) { c.Password, c.PrivateKeyFile = "", filepath.Join(dir, "sftp_boc") }, []string{"ssh-keygen -t ed25519", "sftp_boc.pub", "docs/sftp.md"}},
		{"unreadable private key", func(c *Config) { c.Password, c.PrivateKeyFile = "", garbage }, []string{"ssh-keygen -t ed25519"}},
		{"missing known_hosts", func(c *Config) { c.HostKeyFingerprint, c.KnownHostsFile = "", filepath.Join(dir, "known_hosts") }, []string{"ssh-keyscan", "ssh-keygen -lf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Addr, cfg.User, cfg.Password, cfg.HostKeyFingerprint = "127.0.0.1:1", "hub", "x", "SHA256:abc"
			tc.set(&cfg)
			_, err := New("bank.boc", "disbursement", cfg, connectors.Deps{DataDir: dir}, Keys{})
			if err == nil {
				t.Fatal("built a client without its key")
			}
			for _, s := range tc.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%v: does not say %q", err, s)
				}
			}
		})
	}
}
