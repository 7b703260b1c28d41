package hub

import (
	"context"
	"fmt"

	"github.com/shanghai-mca/mzhub/services/funeral"
)

// wirePartnerState puts the funeral partners into the shared state store
// and keeps this replica's registry and partner guard in step with it:
// the registry files' (or the demo's) partners are imported (the files are
// the declarative source of the non-secret fields; credentials and
// enable/disable live in the store, written by `mzhub partner`), the state
// is applied once before the hub serves, and a component polls its version
// every funeral.partner_reload so that a change made on any host reaches
// every replica within that interval.
func (h *Hub) wirePartnerState(ctx context.Context, partners []funeral.Partner, importer string) error {
	w := &h.parts
	ps, err := funeral.OpenPartnerStore(ctx, h.Store(), w.sec.Fields, w.sec.Audit, h.Clock().Now)
	if err != nil {
		return fmt.Errorf("wire: funeral partner state: %w", err)
	}
	res, err := ps.Import(ctx, partners, importer)
	if err != nil {
		return fmt.Errorf("wire: funeral partner state: %w", err)
	}
	if res != (funeral.ImportResult{}) {
		h.Logger().Info("funeral partner registry imported into the state store", "added", res.Added, "updated", res.Updated,
			"disabled", res.Disabled, "keys", res.Keys)
	}
	sync := funeral.NewPartnerSync(ps, w.fregs, w.sec.Partners.SetPartners, funeral.ConfigFrom(h.Config()).PartnerReload,
		h.Clock(), h.Logger().With("component", "partner-sync"))
	if err := sync.Sync(ctx); err != nil {
		return fmt.Errorf("wire: funeral partner state: %w", err)
	}
	w.partnerStore, w.partnerSync = ps, sync
	h.AddComponent("partner-sync", sync)
	return nil
}

// PartnerStore returns the funeral partner state store (nil when the hub
// serves no funeral partners).
func (h *Hub) PartnerStore() *funeral.PartnerStore { return h.partnerStore }

// PartnerSync returns this replica's funeral partner sync (nil when the hub
// serves no funeral partners).
func (h *Hub) PartnerSync() *funeral.PartnerSync { return h.partnerSync }
