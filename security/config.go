package security

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Config configures keys, partner API access control, console accounts and
// the audit log.
type Config struct {
	// KeyProvider is where keys come from: "file" (KeyDir) or "env" (MZHUB_KEY_* variables).
	KeyProvider string `yaml:"key_provider"`
	// KeyDir holds key files for the file provider; demo keys are generated here on first run.
	KeyDir string `yaml:"key_dir"`
	// AuditKeyFile, when set, is a file holding the audit chain's HMAC-SM3 key (hex), read instead of
	// the key provider's "audit" key: keep it off the host's data directory (a separate read-only
	// mount, a systemd credential such as $CREDENTIALS_DIRECTORY/mzhub-audit), so that whoever can
	// edit the audit log cannot also re-key it. Mode 0400 or 0600.
	AuditKeyFile string `yaml:"audit_key_file"`
	// GenerateKeys creates missing keys (field, blind index, audit, SM2 signing) at start.
	// Keep it on for the embedded and demo profiles; turn it off where keys are provisioned
	// (env provider, cipher machine) so a missing key stops the hub instead.
	GenerateKeys bool `yaml:"generate_keys"`
	// PartnerAPI configures authentication, allowlists and rate limits of the inbound partner API.
	PartnerAPI PartnerAPIConfig `yaml:"partner_api"`
	// Console configures console accounts: password policy, lockout, sessions.
	Console ConsoleConfig `yaml:"console"`
	// Audit configures the audit log.
	Audit AuditConfig `yaml:"audit"`
}

// PartnerAPIConfig configures the inbound partner API's access control.
type PartnerAPIConfig struct {
	// SignatureWindow is how far a signed request's timestamp may be from the hub's clock,
	// either way; older requests are refused and nonces are remembered this long.
	SignatureWindow time.Duration `yaml:"signature_window"`
	// MaxBodyBytes is the partner API's one body limit, in bytes: a signed call
	// (/partner/v1/, /sandbox/partner/v1/, /routes/, /internal/) with a larger
	// body is refused with 413 problem+json, code body_too_large, and the funeral
	// API reads no more. It replaces http.max_body_bytes and funeral.max_body_bytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// PartnerRate is the default sustained request rate per partner (requests per second), for the
	// whole cluster: each of N live replicas allows rate/N and burst/N (at least 1).
	PartnerRate float64 `yaml:"partner_rate"`
	// PartnerBurst is the default burst per partner (requests).
	PartnerBurst int `yaml:"partner_burst"`
	// IPRate is the sustained request rate per source IP (requests per second), applied before authentication;
	// shared between the live replicas like PartnerRate.
	IPRate float64 `yaml:"ip_rate"`
	// IPBurst is the burst per source IP (requests).
	IPBurst int `yaml:"ip_burst"`
	// TrustedProxies lists CIDRs of reverse proxies whose X-Forwarded-For is believed;
	// the source IP is the last address in it that is not a trusted proxy.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Partners lists who may call the partner API. Secrets are never here: each key id's
	// secret comes from the key provider as partner/<key-id>.
	Partners []PartnerAccess `yaml:"partners"`
}

// PartnerAccess is one partner's access rule. Field docs are in the security
// documentation (docs/security.md); the config reference lists the list only.
type PartnerAccess struct {
	// ID names the partner (funeral-home-03, district-310104); routes and the monitor see it.
	ID string `yaml:"id"`
	// KeyIDs are the partner's request-signing key ids (several during a rotation).
	KeyIDs []string `yaml:"key_ids"`
	// MTLSSubjects are client-certificate subject common names that authenticate as this partner.
	MTLSSubjects []string `yaml:"mtls_subjects"`
	// AllowCIDRs are the source networks the partner may call from; empty refuses every address.
	AllowCIDRs []string `yaml:"allow_cidrs"`
	// AllowPaths are path prefixes the partner may call (under the partner API); empty allows all.
	AllowPaths []string `yaml:"allow_paths"`
	// MatchParams requires query parameters: each named parameter must be present with one of the values.
	MatchParams map[string][]string `yaml:"match_params"`
	// Rate overrides PartnerRate for this partner (0 keeps the default).
	Rate float64 `yaml:"rate"`
	// Burst overrides PartnerBurst for this partner (0 keeps the default).
	Burst int `yaml:"burst"`
	// Disabled refuses the partner without removing its configuration.
	Disabled bool `yaml:"disabled"`
}

// ConsoleConfig configures console accounts and sessions.
type ConsoleConfig struct {
	// PasswordMinLength is the shortest password accepted (at least 8).
	PasswordMinLength int `yaml:"password_min_length"`
	// PasswordMinClasses is how many of lower case, upper case, digits and symbols a password needs (3 or 4).
	PasswordMinClasses int `yaml:"password_min_classes"`
	// PasswordMaxAge is how long a password stays valid before it must be changed.
	PasswordMaxAge time.Duration `yaml:"password_max_age"`
	// MaxFailures is the number of consecutive failed logins that locks an account.
	MaxFailures int `yaml:"max_failures"`
	// LockoutDuration is how long a locked account stays locked.
	LockoutDuration time.Duration `yaml:"lockout_duration"`
	// IdleTimeout ends a session after this long without a request.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SessionMaxAge ends a session this long after login, active or not.
	SessionMaxAge time.Duration `yaml:"session_max_age"`
	// SecondFactorRoles lists the roles whose accounts must give a TOTP code (RFC 6238) at login
	// besides the password; enroll each with `mzhub user totp-enroll`. MLPS level 3 expects two
	// factors for administrators: list security-admin (and auditor) here once they are enrolled.
	SecondFactorRoles []string `yaml:"second_factor_roles"`
	// CookieSecure marks session cookies Secure (HTTPS only). Turn off only for local plain-HTTP demos.
	CookieSecure bool `yaml:"cookie_secure"`
	// TLCP configures an optional second console listener speaking TLCP (GB/T 38636, SM2/SM3/SM4)
	// that requires an SM2 client certificate: a login over it needs a certificate mapped to the
	// account (`mzhub user cert-add`), which replaces TOTP as the second factor. Off by default.
	TLCP TLCPConfig `yaml:"tlcp"`
}

// TLCPConfig configures the console's TLCP listener. TLCP uses two server
// certificates: one to sign the handshake and one whose key the client
// encrypts the pre-master secret to. Every file is PEM.
type TLCPConfig struct {
	// Listen is the address of the TLCP listener (host:port); empty turns it off. It serves the
	// console (/console/) only.
	Listen string `yaml:"listen"`
	// SignCertFile is the server's SM2 signing certificate.
	SignCertFile string `yaml:"sign_cert_file"`
	// SignKeyFile is the private key of SignCertFile (unencrypted PEM, mode 0400 or 0600).
	SignKeyFile string `yaml:"sign_key_file"`
	// EncCertFile is the server's SM2 encryption certificate.
	EncCertFile string `yaml:"enc_cert_file"`
	// EncKeyFile is the private key of EncCertFile.
	EncKeyFile string `yaml:"enc_key_file"`
	// ClientCAFile holds the CA certificates (PEM, one or more) that client certificates must
	// chain to; a client without a certificate from one of them is refused in the handshake.
	ClientCAFile string `yaml:"client_ca_file"`
}

// AuditConfig configures the audit log.
type AuditConfig struct {
	// Retention is how long audit records are kept before pruning (at least 180 days, 4320h).
	Retention time.Duration `yaml:"retention"`
}

// DefaultConfig returns the embedded-profile defaults.
func DefaultConfig() Config {
	return Config{
		KeyProvider:  "file",
		KeyDir:       "data/keys",
		GenerateKeys: true,
		PartnerAPI: PartnerAPIConfig{
			SignatureWindow: 5 * time.Minute,
			MaxBodyBytes:    1 << 20,
			PartnerRate:     50,
			PartnerBurst:    100,
			IPRate:          100,
			IPBurst:         200,
		},
		Console: ConsoleConfig{
			PasswordMinLength:  8,
			PasswordMinClasses: 3,
			PasswordMaxAge:     90 * 24 * time.Hour,
			MaxFailures:        5,
			LockoutDuration:    10 * time.Minute,
			IdleTimeout:        15 * time.Minute,
			SessionMaxAge:      8 * time.Hour,
			CookieSecure:       true,
		},
		Audit: AuditConfig{Retention: 180 * 24 * time.Hour},
	}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch c.KeyProvider {
	case "file":
		if c.KeyDir == "" {
			errs = append(errs, errors.New("security.key_dir: required for key_provider file"))
		}
	case "env":
	default:
		bad("security.key_provider: %q: want file or env", c.KeyProvider)
	}

	p := c.PartnerAPI
	if p.SignatureWindow < 30*time.Second || p.SignatureWindow > time.Hour {
		bad("security.partner_api.signature_window: %s: want 30s to 1h", p.SignatureWindow)
	}
	if p.MaxBodyBytes < 1024 {
		bad("security.partner_api.max_body_bytes: %d: want at least 1024", p.MaxBodyBytes)
	}
	if p.PartnerRate <= 0 || p.PartnerBurst < 1 {
		bad("security.partner_api.partner_rate/partner_burst: must be positive")
	}
	if p.IPRate <= 0 || p.IPBurst < 1 {
		bad("security.partner_api.ip_rate/ip_burst: must be positive")
	}
	for _, s := range p.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err != nil {
			bad("security.partner_api.trusted_proxies: %q: not a CIDR", s)
		}
	}
	ids, keyIDs, subjects := map[string]bool{}, map[string]string{}, map[string]string{}
	for i, pa := range p.Partners {
		where := fmt.Sprintf("security.partner_api.partners[%d]", i)
		if !idRE.MatchString(pa.ID) {
			bad("%s.id: %q: want 1-64 characters of [A-Za-z0-9._-]", where, pa.ID)
		} else if ids[pa.ID] {
			bad("%s.id: %q: duplicate partner", where, pa.ID)
		}
		ids[pa.ID] = true
		if len(pa.KeyIDs) == 0 && len(pa.MTLSSubjects) == 0 {
			bad("%s: partner %s needs key_ids or mtls_subjects", where, pa.ID)
		}
		for _, k := range pa.KeyIDs {
			if !isKeyID(k) {
				bad("%s.key_ids: %q: want lower-case [a-z0-9-], 1-64 characters", where, k)
			} else if other, dup := keyIDs[k]; dup {
				bad("%s.key_ids: %q already belongs to %s", where, k, other)
			}
			keyIDs[k] = pa.ID
		}
		for _, s := range pa.MTLSSubjects {
			if other, dup := subjects[s]; dup {
				bad("%s.mtls_subjects: %q already belongs to %s", where, s, other)
			}
			subjects[s] = pa.ID
		}
		for _, s := range pa.AllowCIDRs {
			if _, err := netip.ParsePrefix(s); err != nil {
				bad("%s.allow_cidrs: %q: not a CIDR (write 10.1.2.3/32 for one address)", where, s)
			}
		}
		for _, s := range pa.AllowPaths {
			if !strings.HasPrefix(s, "/") {
				bad("%s.allow_paths: %q: must start with /", where, s)
			}
		}
		for k, vs := range pa.MatchParams {
			if len(vs) == 0 {
				bad("%s.match_params.%s: list at least one value", where, k)
			}
		}
		if pa.Rate < 0 || pa.Burst < 0 {
			bad("%s.rate/burst: must not be negative", where)
		}
	}

	cc := c.Console
	if cc.PasswordMinLength < 8 {
		bad("security.console.password_min_length: %d: must be at least 8", cc.PasswordMinLength)
	}
	if cc.PasswordMinClasses < 3 || cc.PasswordMinClasses > 4 {
		bad("security.console.password_min_classes: %d: want 3 or 4", cc.PasswordMinClasses)
	}
	if cc.PasswordMaxAge < 24*time.Hour || cc.PasswordMaxAge > 366*24*time.Hour {
		bad("security.console.password_max_age: %s: want 24h to 8784h", cc.PasswordMaxAge)
	}
	if cc.MaxFailures < 1 || cc.MaxFailures > 10 {
		bad("security.console.max_failures: %d: want 1 to 10", cc.MaxFailures)
	}
	if cc.LockoutDuration < time.Minute {
		bad("security.console.lockout_duration: %s: want at least 1m", cc.LockoutDuration)
	}
	if cc.IdleTimeout < time.Minute || cc.IdleTimeout > 30*time.Minute {
		bad("security.console.idle_timeout: %s: want 1m to 30m", cc.IdleTimeout)
	}
	if cc.SessionMaxAge < cc.IdleTimeout || cc.SessionMaxAge > 24*time.Hour {
		bad("security.console.session_max_age: %s: want idle_timeout to 24h", cc.SessionMaxAge)
	}
	for _, r := range cc.SecondFactorRoles {
		if r != "operator" && r != "security-admin" && r != "auditor" {
			bad("security.console.second_factor_roles: %q: want operator, security-admin or auditor", r)
		}
	}
	if t := cc.TLCP; t.Listen != "" {
		for _, f := range []struct{ name, v string }{{"sign_cert_file", t.SignCertFile}, {"sign_key_file", t.SignKeyFile},
			{"enc_cert_file", t.EncCertFile}, {"enc_key_file", t.EncKeyFile}, {"client_ca_file", t.ClientCAFile}} {
			if f.v == "" {
				bad("security.console.tlcp.%s: required when security.console.tlcp.listen is set", f.name)
			}
		}
	}
	if c.Audit.Retention < 180*24*time.Hour {
		bad("security.audit.retention: %s: must be at least 4320h (180 days)", c.Audit.Retention)
	}
	return errors.Join(errs...)
}

func isKeyID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-'
}
