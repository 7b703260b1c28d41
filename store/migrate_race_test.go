package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestConcurrentFirstMigrations: replicas starting together on a new
// database all migrate at once; none fails (PostgreSQL raced on creating
// schema_migrations: a unique violation in pg_type).
func TestConcurrentFirstMigrations(t *testing.T) {
	db := storetest.OpenPostgres(t)
	fsys := func(c int) fstest.MapFS {
		return fstest.MapFS{"001_t.sql": {Data: []byte(fmt.Sprintf("CREATE TABLE race_t%d (id INTEGER)", c))}}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			if err := db.Migrate(context.Background(), fmt.Sprintf("race-%d", i%2), fsys(i%2)); err != nil {
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
