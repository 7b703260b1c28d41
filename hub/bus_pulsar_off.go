//go:build mzhub_embedded

package hub

import (
	"context"
	"log/slog"

	"github.com/shanghai-mca/mzhub/bus"
)

// Flavour names what this binary links: see the full build's Flavour.
const Flavour = "embedded"

func openPulsar(context.Context, bus.PulsarConfig, *slog.Logger) (bus.Bus, error) {
	return nil, ErrNotInThisBuild("bus.kind: pulsar", "the Pulsar client")
}
