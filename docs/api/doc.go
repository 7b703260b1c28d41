// Package api holds the published OpenAPI 3.1 documents of the funeral and
// burial interfaces and the code that reads them: partner.yaml (the partner
// API served by mzhub under /partner/v1, generated from partner.yaml.tmpl)
// and booking.yaml (the booking API each funeral home implements and the hub
// calls). The server validates request bodies against these schemas, and
// tests check every served route and every answer against them, so the spec
// and the service cannot drift.
package api
