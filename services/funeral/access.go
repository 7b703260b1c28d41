package funeral

import (
	"net/netip"

	"github.com/shanghai-mca/mzhub/security"
)

// AccessRules turns the registry into the security package's partner access
// rules (security.partner_api.partners), so the hub can guard the funeral
// API with security/access: key ids, the IP allowlist (addresses become /32
// or /128 prefixes), the allowed path prefixes and the disabled flag. A
// partner is enabled when it is allowed in any of envs; when one guard
// fronts both the production API and the sandbox, pass both environments
// (each API still refuses partners not enabled in its own environment).
func (r *Registry) AccessRules(envs ...string) []security.PartnerAccess {
	var out []security.PartnerAccess
	for _, p := range r.Partners() {
		enabled := false
		for _, env := range envs {
			enabled = enabled || p.Allowed(env)
		}
		pa := security.PartnerAccess{ID: p.ID, KeyIDs: append([]string(nil), p.KeyIDs...),
			AllowPaths: []string{"/partner/v1/", "/sandbox/partner/v1/"}, Disabled: !enabled}
		for _, s := range p.AllowIPs {
			if a, err := netip.ParseAddr(s); err == nil {
				pa.AllowCIDRs = append(pa.AllowCIDRs, netip.PrefixFrom(a, a.BitLen()).String())
				continue
			}
			pa.AllowCIDRs = append(pa.AllowCIDRs, s)
		}
		out = append(out, pa)
	}
	return out
}
