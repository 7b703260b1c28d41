// Package funeral is the hub's funeral and burial service: the partner API
// that funeral homes, cemeteries and columbaria push to (docs/api/partner.yaml,
// served under /partner/v1/), the state it keeps (records with versions,
// revisions and a change log relayed to the bus), the bureau's read API and
// the operational view (last sync, error rate, stale resources, cremation
// warnings).
//
// Request bodies are validated against the published OpenAPI document
// itself, and routing is driven by it, so the served API and the spec cannot
// drift. Writes from many partners are grouped into one transaction by a
// single writer (group commit).
//
// Partners are authenticated once, by the security guard (security/access)
// the hub runs in front of every partner API; the API serves the partner the
// guard put in the request context (security.PartnerFrom). Tests run it
// behind the same guard (security/access/accesstest).
package funeral
