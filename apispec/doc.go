// Package apispec holds the OpenAPI 3.1 documents of the funeral and burial
// interfaces and the code that reads them: partner.yaml (the partner API
// served by mzhub under /partner/v1, generated from partner.yaml.tmpl) and
// booking.yaml (the booking API each funeral home implements and the hub
// calls). The documents are embedded, served at /docs/api/ (Handler), and
// the partner API validates request bodies against their schemas; tests
// check every served route and every answer against them, so the spec and
// the service cannot drift.
//
// The documents live here, beside the code that embeds them (go:embed
// cannot reach a parent directory). docs/api/partner.yaml and
// docs/api/booking.yaml are the published copies integrators read; a golden
// test keeps them byte-equal to the embedded ones, and
// `go test ./apispec -update` regenerates partner.yaml and refreshes both
// copies.
package apispec
