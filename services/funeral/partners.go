package funeral

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

// Role is what kind of institution a partner is.
type Role string

// Partner roles.
const (
	RoleFuneralHome Role = "funeral_home"
	RoleCemetery    Role = "cemetery"
	RoleColumbarium Role = "columbarium"
)

// Environments a partner may be enabled in.
const (
	EnvSandbox    = "sandbox"
	EnvProduction = "production"
)

// Partner is one funeral home, cemetery or columbarium in the registry
// (configs/partners/funeral/*.yaml). Secrets are never in the file: key ids
// name keys held by the key provider (partner/<key id>).
type Partner struct {
	// ID is the partner id, e.g. "funeral.fh01", "cemetery.cm01", "columbarium.cb01".
	ID string `yaml:"id"`
	// Name is the institution's name.
	Name string `yaml:"name"`
	// Role is funeral_home, cemetery or columbarium.
	Role Role `yaml:"role"`
	// DivisionCode is the district (310101 … 310151).
	DivisionCode string `yaml:"division_code,omitempty"`
	// Environments lists where the partner may call: sandbox, production.
	Environments []string `yaml:"environments"`
	// AllowIPs are the source addresses or CIDR prefixes allowed to call.
	AllowIPs []string `yaml:"allow_ips"`
	// KeyIDs are the partner's active signing keys (newest last); a rotation
	// adds one and the old one is removed once the partner has switched.
	KeyIDs []string `yaml:"key_ids"`
	// Disabled refuses every call of the partner.
	Disabled bool `yaml:"disabled,omitempty"`
	// CremationWarnDays overrides the days a body may wait before ops are warned (0: default).
	CremationWarnDays int `yaml:"cremation_warn_days,omitempty"`
	// BookingURL is the base URL of the home's booking API (funeral homes only).
	BookingURL string `yaml:"booking_url,omitempty"`
	// BookingKeyID names the key the hub signs booking calls with.
	BookingKeyID string `yaml:"booking_key_id,omitempty"`
}

// Allowed reports whether the partner may call in env.
func (p Partner) Allowed(env string) bool {
	if p.Disabled {
		return false
	}
	for _, e := range p.Environments {
		if e == env {
			return true
		}
	}
	return false
}

// AllowsIP reports whether addr is on the partner's allowlist.
func (p Partner) AllowsIP(addr netip.Addr) bool {
	for _, s := range p.AllowIPs {
		if pfx, err := netip.ParsePrefix(s); err == nil && pfx.Contains(addr.Unmap()) {
			return true
		}
		if a, err := netip.ParseAddr(s); err == nil && a == addr.Unmap() {
			return true
		}
	}
	return false
}

// PartnerFile is one registry file.
type PartnerFile struct {
	// Partners in the file.
	Partners []Partner `yaml:"partners"`
}

var (
	partnerIDRE = regexp.MustCompile(`^(funeral|cemetery|columbarium)\.[a-z0-9][a-z0-9-]{1,30}$`)
	keyIDRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{3,63}$`)
)

// Validate reports every problem of a partner at once.
func (p Partner) Validate() error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("partner %s: "+f, append([]any{p.ID}, a...)...))
	}
	if !partnerIDRE.MatchString(p.ID) {
		bad("id: want funeral.|cemetery.|columbarium. and a lower-case name")
	}
	if p.Name == "" {
		bad("name: required")
	}
	switch p.Role {
	case RoleFuneralHome, RoleCemetery, RoleColumbarium:
	default:
		bad("role %q: want funeral_home, cemetery or columbarium", p.Role)
	}
	if p.DivisionCode != "" && !regexp.MustCompile(`^3101\d\d$`).MatchString(p.DivisionCode) {
		bad("division_code %q: want a Shanghai district code 3101xx", p.DivisionCode)
	}
	if len(p.Environments) == 0 {
		bad("environments: at least one of sandbox, production")
	}
	for _, e := range p.Environments {
		if e != EnvSandbox && e != EnvProduction {
			bad("environments: %q: want sandbox or production", e)
		}
	}
	for _, s := range p.AllowIPs {
		_, e1 := netip.ParsePrefix(s)
		_, e2 := netip.ParseAddr(s)
		if e1 != nil && e2 != nil {
			bad("allow_ips: %q is neither an address nor a CIDR prefix", s)
		}
	}
	for _, k := range p.KeyIDs {
		if !keyIDRE.MatchString(k) {
			bad("key_ids: %q: want lower-case [a-z0-9-]", k)
		}
	}
	if p.CremationWarnDays < 0 {
		bad("cremation_warn_days: must not be negative")
	}
	return errors.Join(errs...)
}

// Registry is the set of funeral partners. It is safe for concurrent use;
// Replace swaps its whole content at once (the hub does when the partner
// state in the store changes), so readers always see one consistent set.
type Registry struct {
	snap atomic.Pointer[registrySnap]
}

type registrySnap struct {
	byID  map[string]Partner
	byKey map[string]string
	ids   []string
}

// NewRegistry builds a registry from partners, reporting every problem.
func NewRegistry(partners []Partner) (*Registry, error) {
	snap, err := newSnap(partners)
	r := &Registry{}
	r.snap.Store(snap)
	return r, err
}

// Replace swaps the registry's partners for partners. On a problem it keeps
// the valid partners (as NewRegistry does) and returns the problem.
func (r *Registry) Replace(partners []Partner) error {
	snap, err := newSnap(partners)
	r.snap.Store(snap)
	return err
}

func newSnap(partners []Partner) (*registrySnap, error) {
	r := &registrySnap{byID: map[string]Partner{}, byKey: map[string]string{}}
	var errs []error
	for _, p := range partners {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.byID[p.ID]; dup {
			errs = append(errs, fmt.Errorf("partner %s: listed twice", p.ID))
			continue
		}
		for _, k := range p.KeyIDs {
			if other, dup := r.byKey[k]; dup {
				errs = append(errs, fmt.Errorf("partner %s: key id %s already belongs to %s", p.ID, k, other))
			}
			r.byKey[k] = p.ID
		}
		r.byID[p.ID] = p
		r.ids = append(r.ids, p.ID)
	}
	sort.Strings(r.ids)
	return r, errors.Join(errs...)
}

// DecodePartnerFile decodes one registry file strictly (unknown keys are errors).
func DecodePartnerFile(rd io.Reader) (PartnerFile, error) {
	var f PartnerFile
	dec := yaml.NewDecoder(rd)
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return PartnerFile{}, err
	}
	return f, nil
}

// LoadRegistry reads every *.yaml file of dir.
func LoadRegistry(dir string) (*Registry, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var all []Partner
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("funeral partners: %w", err)
		}
		f, err := DecodePartnerFile(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("funeral partners: %s: %w", name, err)
		}
		all = append(all, f.Partners...)
	}
	reg, err := NewRegistry(all)
	if err != nil {
		return nil, fmt.Errorf("funeral partners in %s: %w", dir, err)
	}
	return reg, nil
}

// Partner returns the partner with id.
func (r *Registry) Partner(id string) (Partner, bool) {
	p, ok := r.snap.Load().byID[id]
	return p, ok
}

// ByKey returns the partner owning a key id.
func (r *Registry) ByKey(keyID string) (Partner, bool) {
	s := r.snap.Load()
	id, ok := s.byKey[keyID]
	if !ok {
		return Partner{}, false
	}
	return s.byID[id], true
}

// IDs lists partner ids, sorted.
func (r *Registry) IDs() []string { return append([]string(nil), r.snap.Load().ids...) }

// Partners lists partners sorted by id.
func (r *Registry) Partners() []Partner {
	s := r.snap.Load()
	out := make([]Partner, 0, len(s.ids))
	for _, id := range s.ids {
		out = append(out, s.byID[id])
	}
	return out
}
