package disbursement

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// testPersonKey is the person-key secret of the tests' services (the same
// in the SIGKILL tests' child processes).
var testPersonKey = []byte("mzhub test disbursement-person key")

func mappingsRoot(t testing.TB) string {
	t.Helper()
	p, err := banksim.FindMappings()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testSealer seals with SM4-GCM under a fixed test key, as the hub's field
// key ring does.
func testSealer(t testing.TB) Sealer {
	t.Helper()
	r, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind-index-key-for-tests"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startSims starts the six simulated banks for a test.
func startSims(t testing.TB, dir string, opts banksim.Options) []*banksim.Bank {
	t.Helper()
	sims, err := banksim.StartAllWith(context.Background(), dir, os.DirFS(mappingsRoot(t)), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range sims {
			_ = s.Close()
		}
	})
	return sims
}

// newService builds the service over the given bank configs and store.
func newService(t testing.TB, db *store.DB, dir string, cfgs []bank.Config, events connectors.Events, aud audit.Appender) *Service {
	return newServiceTimeout(t, db, dir, cfgs, events, aud, 5*time.Second)
}

func newServiceTimeout(t testing.TB, db *store.DB, dir string, cfgs []bank.Config, events connectors.Events, aud audit.Appender, opTimeout time.Duration) *Service {
	t.Helper()
	return newServiceWith(t, db, dir, cfgs, events, aud, opTimeout, nil)
}

// newServiceWith is newServiceTimeout with a last say on the service's config.
func newServiceWith(t testing.TB, db *store.DB, dir string, cfgs []bank.Config, events connectors.Events, aud audit.Appender, opTimeout time.Duration, tune func(*Config)) *Service {
	t.Helper()
	ctx := context.Background()
	deps := connectors.Deps{Store: db, Events: events, DataDir: dir}
	var banks []*bank.Bank
	for _, c := range cfgs {
		c.SFTP.OpTimeout = opTimeout
		c.SFTP.RetryBackoff = 20 * time.Millisecond
		c.SFTP.BreakerOpenFor = 300 * time.Millisecond // the tests wait seconds, not the production half minute
		c.SFTP.Node = "test-node"
		fs, err := bank.LoadFileSet(os.DirFS(mappingsRoot(t)), c.Layouts)
		if err != nil {
			t.Fatal(err)
		}
		bk, err := bank.New(c, fs, deps, "disbursement", sftp.Keys{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bk.SFTP.Close(ctx) })
		banks = append(banks, bk)
	}
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(dir, "batches")
	cfg.PollEvery = 30 * time.Millisecond
	// The return deadline is a bound for a bank that never answers, not a
	// test timer: under -race on a loaded machine a 30,000-record month
	// took longer than 30 s and its open records were declared missing.
	// Tests of the deadline itself set their own (refused_test.go).
	cfg.ReturnWait = 10 * time.Minute
	if tune != nil {
		tune(&cfg)
	}
	svc, err := New(ctx, cfg, banks, deps, aud, testPersonKey)
	if err != nil {
		t.Fatal(err)
	}
	svc.SetSealer(testSealer(t))
	return svc
}

func simConfigs(sims []*banksim.Bank) []bank.Config {
	var out []bank.Config
	for _, s := range sims {
		out = append(out, s.Config)
	}
	return out
}

func writeList(t testing.TB, dir string, opt GenerateOptions) string {
	t.Helper()
	p := filepath.Join(dir, "list.csv")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteList(f, opt); err != nil {
		t.Fatal(err)
	}
	return p
}

func openDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	if os.Getenv("MZHUB_TEST_POSTGRES") != "" {
		// The integration run (.ci/run) runs the whole cycle on PostgreSQL.
		return storetest.OpenPostgres(t)
	}
	return openSQLiteDB(t, dir)
}

// openSQLiteDB opens the state file in dir; the SIGKILL tests use it so that
// the child process and the parent share one database across restarts.
func openSQLiteDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(dir, "state.db")
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
