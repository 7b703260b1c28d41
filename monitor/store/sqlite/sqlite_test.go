package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/monitor/store/storetest"
)

func TestStoreSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) monitor.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "monitor.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
