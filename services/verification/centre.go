package verification

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/security"
)

// CentreFile is the name of the verification centre's partner file under
// paths.partners.
const CentreFile = "verification-centre.yaml"

// CentrePaths are the path prefixes the centre may call: its API only.
var CentrePaths = []string{"/internal/verification/"}

// Centre is the bureau's verification centre (核对中心) as a partner of the
// hub: the system that submits households (POST /internal/verification/v1/
// households) and reads their results. Its file holds the non-secret
// fields; the secret of each key id is held by the key provider as
// partner/<key id> and never written to the file.
type Centre struct {
	// ID is the partner id the guard, the audit log and the monitor see.
	ID string `yaml:"id"`
	// Name is the institution's name.
	Name string `yaml:"name"`
	// AllowIPs are the source addresses or CIDR prefixes the centre calls from.
	AllowIPs []string `yaml:"allow_ips"`
	// KeyIDs are the centre's signing key ids (two during a rotation).
	KeyIDs []string `yaml:"key_ids"`
	// Rate and Burst override the partner API's per-partner limit (0: default).
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// Disabled refuses every call of the centre.
	Disabled bool `yaml:"disabled"`
}

var (
	centreIDRE    = regexp.MustCompile(`^verification[.-][a-z0-9][a-z0-9-]{1,30}$`)
	centreKeyIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{3,63}$`)
)

// Validate reports every problem of the centre's fields at once.
func (c Centre) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if !centreIDRE.MatchString(c.ID) {
		bad("id %q: want verification- (or verification.) and a lower-case name", c.ID)
	}
	if c.Name == "" {
		bad("name: required")
	}
	if len(c.KeyIDs) == 0 {
		bad("key_ids: at least one (the secret is partner/<key id> in the key provider)")
	}
	seen := map[string]bool{}
	for _, k := range c.KeyIDs {
		if !centreKeyIDRE.MatchString(k) {
			bad("key_ids: %q: want 4-64 characters of lower-case [a-z0-9-]", k)
		}
		if seen[k] {
			bad("key_ids: %q listed twice", k)
		}
		seen[k] = true
	}
	if len(c.AllowIPs) == 0 {
		bad("allow_ips: at least one address or CIDR prefix (an empty list refuses every call)")
	}
	for _, s := range c.AllowIPs {
		if _, err := allowPrefix(s); err != nil {
			bad("allow_ips: %q is neither an address nor a CIDR prefix", s)
		}
	}
	if c.Rate < 0 || c.Burst < 0 {
		bad("rate/burst: must not be negative")
	}
	return errors.Join(errs...)
}

func allowPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// Access returns the partner guard's rule for the centre: its key ids, its
// addresses, its API's paths only.
func (c Centre) Access() security.PartnerAccess {
	pa := security.PartnerAccess{ID: c.ID, KeyIDs: append([]string(nil), c.KeyIDs...), AllowPaths: append([]string(nil), CentrePaths...),
		Rate: c.Rate, Burst: c.Burst, Disabled: c.Disabled}
	for _, s := range c.AllowIPs {
		if p, err := allowPrefix(s); err == nil {
			pa.AllowCIDRs = append(pa.AllowCIDRs, p.String())
		}
	}
	return pa
}

// ParseCentre decodes and validates a centre file, strictly: an unknown
// field (a secret pasted in, a misspelt key) is an error.
func ParseCentre(data []byte) (Centre, error) {
	var c Centre
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Centre{}, fmt.Errorf("verification centre: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Centre{}, fmt.Errorf("verification centre: %w", err)
	}
	return c, nil
}

// LoadCentre reads the centre's file.
func LoadCentre(path string) (Centre, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Centre{}, fmt.Errorf("verification centre: %w", err)
	}
	c, err := ParseCentre(data)
	if err != nil {
		return Centre{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
