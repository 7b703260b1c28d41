package hub

import (
	"context"
	"fmt"
)

// family wires one partner family beyond the banks and the funeral partners
// (the one-stop portal, the data sea, the card center, the verification
// partners, ...): its connectors, its service, its HTTP handlers and, when
// opts.Demo is set, its simulators and the demo's flows through it. Each
// family lives in its own file of this package and is listed once in
// families below, so that serve, demo and the tests build it the same way.
type family struct {
	// name is the family's short name in errors and logs.
	name string
	// wire adds the family to h. It runs after the bus, the route engine,
	// the monitor and the disbursement service are wired.
	wire func(ctx context.Context, h *Hub, opts Options, singleton singletonFunc) error
}

// families are wired in this order by Build.
var families = []family{
	{name: "portal", wire: wirePortal},
	{name: "datasea", wire: wireDatasea},
	{name: "accounts", wire: wireAccounts}, // after datasea: chains its screening after the allowance rules'
	{name: "verification", wire: wireVerification},
}

// wireFamilies wires every partner family.
func (h *Hub) wireFamilies(ctx context.Context, opts Options, singleton singletonFunc) error {
	for _, f := range families {
		if err := f.wire(ctx, h, opts, singleton); err != nil {
			return fmt.Errorf("wire: %s: %w", f.name, err)
		}
	}
	return nil
}
