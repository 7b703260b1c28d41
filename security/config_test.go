package security

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"provider", func(c *Config) { c.KeyProvider = "vault" }, []string{"key_provider"}},
		{"short password", func(c *Config) { c.Console.PasswordMinLength = 6 }, []string{"password_min_length"}},
		{"retention", func(c *Config) { c.Audit.Retention = 90 * 24 * time.Hour }, []string{"retention"}},
		{"idle", func(c *Config) { c.Console.IdleTimeout = time.Hour }, []string{"idle_timeout"}},
		{"tlcp without its files", func(c *Config) { c.Console.TLCP = TLCPConfig{Listen: ":8443", SignCertFile: "s.crt"} },
			[]string{"tlcp.sign_key_file: required", "tlcp.enc_cert_file: required", "tlcp.enc_key_file: required", "tlcp.client_ca_file: required"}},
		{"partners", func(c *Config) {
			c.PartnerAPI.Partners = []PartnerAccess{
				{ID: "fh-01", KeyIDs: []string{"fh-01-a"}, AllowCIDRs: []string{"10.0.0.0/8"}},
				{ID: "fh-01", KeyIDs: []string{"fh-01-a", "Bad_Key"}, AllowCIDRs: []string{"10.0.0.1"}},
				{ID: "cem 02"},
			}
		}, []string{"duplicate partner", "already belongs to fh-01", `"Bad_Key"`, "not a CIDR", `"cem 02"`, "needs key_ids"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}
