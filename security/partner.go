package security

import "context"

// How a partner proved who it is.
const (
	// AuthHMAC: an HMAC-SM3 request signature (security/sign).
	AuthHMAC = "hmac-sm3"
	// AuthMTLS: a verified TLS client certificate.
	AuthMTLS = "mtls"
)

// Partner is the authenticated caller of a partner API request, put into the
// request context by the access middleware. Routes, services and the monitor
// read it with PartnerFrom.
type Partner struct {
	// ID is the configured partner id (security.partner_api.partners[].id).
	ID string
	// KeyID is the signing key id (AuthHMAC) or "" (AuthMTLS).
	KeyID string
	// Method is AuthHMAC or AuthMTLS.
	Method string
	// SourceIP is the caller's address as the hub decided it.
	SourceIP string
	// RequestID is the request's id (also in problem answers and the audit log).
	RequestID string
}

type partnerKey struct{}

// WithPartner returns ctx carrying p.
func WithPartner(ctx context.Context, p Partner) context.Context {
	return context.WithValue(ctx, partnerKey{}, p)
}

// PartnerFrom returns the authenticated partner of a request context.
func PartnerFrom(ctx context.Context) (Partner, bool) {
	p, ok := ctx.Value(partnerKey{}).(Partner)
	return p, ok
}
