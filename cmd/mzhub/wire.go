package main

import (
	"context"
	"net/http"

	"github.com/shanghai-mca/mzhub/hub"
)

// wireOptions adjust wiring for the demo.
type wireOptions struct {
	// demo starts the partner simulators beside the hub.
	demo bool
}

// wire adds every component and handler of the hub. It is the composition
// root: the only place that knows all packages.
func wire(ctx context.Context, h *hub.Hub, opts wireOptions) error {
	h.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
	return nil
}
