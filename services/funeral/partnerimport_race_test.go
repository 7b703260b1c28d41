package funeral

import (
	"context"
	"sync"
	"testing"

	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestConcurrentImportOnStart: replicas starting together on PostgreSQL
// all import the registry files at once; none fails (both found a partner
// missing and both inserted it: a primary-key violation stopped the
// second replica; found by the operator walkthrough).
func TestConcurrentImportOnStart(t *testing.T) {
	db := storetest.OpenPostgres(t)
	ctx := context.Background()
	partners := testPartners(t).Partners()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		ps, err := OpenPartnerStore(ctx, db, testRing(t), &audittest.Recorder{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, err := ps.Import(ctx, partners, "system:registry-file"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
