// Package access guards the inbound partner API: PartnerAuth's middleware
// authenticates every request (HMAC-SM3 signature from security/sign, or a
// verified TLS client certificate), refuses replays, checks the partner's IP
// allowlist, allowed paths and required parameters, applies rate limits per
// source IP and per partner, writes one audit record per call (allowed or
// refused) and puts the partner identity into the request context
// (security.PartnerFrom). Refusals are RFC 9457 problem answers.
package access
