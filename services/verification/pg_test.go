package verification

import (
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestIntegrationPostgres runs households against every simulated partner
// on PostgreSQL (the cluster profile's state store): the shared migration,
// the outbox with a call in doubt (a slow partner), a rejection and the
// aggregate. It runs when MZHUB_TEST_POSTGRES names a server.
func TestIntegrationPostgres(t *testing.T) {
	db := storetest.OpenPostgres(t)
	sm := startSims(t)
	sm.samr.Faults.Delay.Store(int64(900 * time.Millisecond))
	sm.hpf.Faults.SetRates(1000, 0)
	s := newService(t, testConfig(), db, sm.config(400*time.Millisecond).partners(t), nil)
	ids := submitHouseholds(t, s, 0, 4, 2)
	for _, r := range waitFinal(t, s, ids, 2*time.Minute) {
		st := map[string]PartnerResult{}
		for _, p := range r.Partners {
			st[p.Partner] = p
		}
		if st["samr"].State != StateAnswered || st["samr"].Lookups < 1 || st["hpf"].State != StateRejected || st["villagebank.vb14"].State != StateAnswered {
			t.Errorf("%s: %+v", r.ID, r.Partners)
		}
	}
	for p, l := range sm.ledgers() {
		if l.Repeated() != 0 {
			t.Errorf("%s asked again", p)
		}
	}
}
