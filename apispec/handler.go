package apispec

import (
	"net/http"
	"strings"
)

// Handler serves the published documents for integrators: GET
// <prefix>/partner.yaml and <prefix>/booking.yaml (mount it with
// http.StripPrefix, e.g. at /docs/api/). It needs no authentication: the
// documents are public.
func Handler() http.Handler {
	docs := map[string][]byte{"partner.yaml": partnerYAML, "booking.yaml": bookingYAML}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := docs[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}
