package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/store/eventstoretest"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
)

func TestStoreSuite(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) monitor.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "monitor.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
