package pulsar_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/bustest"
	"github.com/shanghai-mca/mzhub/bus/pulsar"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
)

// testConfig returns the configuration of the broker named by
// MZHUB_TEST_PULSAR (a pulsar:// URL), in namespace mzhub/test created
// through the admin API (MZHUB_TEST_PULSAR_ADMIN, default port 8080 of the
// same host). It skips the test when the variable is unset.
func testConfig(t testing.TB) bus.PulsarConfig {
	t.Helper()
	u := os.Getenv("MZHUB_TEST_PULSAR")
	if u == "" {
		t.Skip("MZHUB_TEST_PULSAR not set: skipping Pulsar integration test (deploy/pulsar/start.sh starts a broker and prints the URL)")
	}
	admin := os.Getenv("MZHUB_TEST_PULSAR_ADMIN")
	if admin == "" {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatalf("MZHUB_TEST_PULSAR %q: %v", u, err)
		}
		admin = "http://" + pu.Hostname() + ":8080"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pulsar.EnsureNamespace(ctx, nil, admin, "mzhub", "test", "standalone"); err != nil {
		t.Fatalf("set up namespace: %v", err)
	}
	cfg := bus.DefaultConfig().Pulsar
	cfg.URL = u
	cfg.Namespace = "test"
	cfg.OperationTimeout = 20 * time.Second
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	cfg.ProducerName = "bustest-" + hex.EncodeToString(b)
	return cfg
}

func open(t testing.TB, cfg bus.PulsarConfig) *pulsar.Bus {
	t.Helper()
	b, err := pulsar.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open pulsar bus: %v", err)
	}
	return b
}

func TestIntegrationSuite(t *testing.T) {
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		cfg := testConfig(t)
		return func() bus.Bus { return open(t, cfg) }
	})
}

// TestIntegrationSuiteSealed runs the suite over bus.Sealed: the cluster
// profile seals bodies at rest in Pulsar's ledgers (bus.seal_bodies).
func TestIntegrationSuiteSealed(t *testing.T) {
	ring, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key for pulsar tests"))
	if err != nil {
		t.Fatal(err)
	}
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		cfg := testConfig(t)
		return func() bus.Bus { return bus.Sealed(open(t, cfg), ring) }
	})
}

func TestFullTopic(t *testing.T) {
	cfg := bus.DefaultConfig().Pulsar
	cfg.URL = "pulsar://127.0.0.1:6650"
	b, err := pulsar.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	for _, tc := range []struct{ in, want string }{
		{"boc.files", "persistent://mzhub/exchange/boc.files"},
		{"disbursement/boc.files", "persistent://mzhub/disbursement/boc.files"},
		{"other/ns/t", "persistent://other/ns/t"},
		{"non-persistent://mzhub/exchange/t", "non-persistent://mzhub/exchange/t"},
	} {
		if got := b.FullTopic(tc.in); got != tc.want {
			t.Errorf("FullTopic(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, cfg := range []bus.PulsarConfig{
		{},
		{URL: "http://x:8080", Tenant: "t", Namespace: "n"},
		{URL: "pulsar://x:6650", Tenant: "t"},
		{URL: "pulsar://x:6650", Tenant: "t", Namespace: "n", OperationTimeout: -1},
	} {
		if err := pulsar.Validate(cfg); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", cfg)
		}
	}
	ok := bus.DefaultConfig().Pulsar
	ok.URL = "pulsar://127.0.0.1:6650"
	if err := pulsar.Validate(ok); err != nil {
		t.Errorf("Validate(default+url): %v", err)
	}
}

// TestCheckFailsWithoutBroker: readiness asks the broker; with nothing
// listening at the URL the check fails naming it (no broker needed).
func TestCheckFailsWithoutBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // a port that refuses connections
	cfg := bus.DefaultConfig().Pulsar
	cfg.URL = "pulsar://" + addr
	cfg.OperationTimeout = 2 * time.Second
	b, err := pulsar.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = b.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("check without a broker: %v", err)
	}
}

// TestIntegrationCheck: with the broker up the check passes.
func TestIntegrationCheck(t *testing.T) {
	b := open(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
