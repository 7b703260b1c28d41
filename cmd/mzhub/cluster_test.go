package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

// TestIntegrationClusterProfile starts `mzhub serve` on the shipped cluster
// profile against real PostgreSQL, Pulsar and ClickHouse, with keys from
// the environment only, checks it becomes ready and serves metrics, and
// stops it with SIGTERM.
func TestIntegrationClusterProfile(t *testing.T) {
	pg, pulsarURL, ch := os.Getenv("MZHUB_TEST_POSTGRES"), os.Getenv("MZHUB_TEST_PULSAR"), os.Getenv("MZHUB_TEST_CLICKHOUSE")
	if pg == "" || pulsarURL == "" || ch == "" {
		t.Skip("MZHUB_TEST_POSTGRES, MZHUB_TEST_PULSAR and MZHUB_TEST_CLICKHOUSE must all be set (.ci/run starts the three services)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A database of its own on the PostgreSQL server.
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	dbName := "mzhub_cluster_" + hex.EncodeToString(b)
	admin, err := store.Open(ctx, store.Config{Driver: "postgres", DSN: pg, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
	})
	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + dbName

	// Keys only from the environment, as a cipher machine or a secret store would hand them over.
	sm2Key, err := keys.GenerateSM2()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		keys.EnvName(keys.FieldPrefix + keys.NewKID(time.Now())): hex.EncodeToString(keys.Random(keys.FieldKeySize)),
		keys.EnvName(keys.BlindName):                             hex.EncodeToString(keys.Random(keys.MACKeySize)),
		keys.EnvName(keys.AuditName):                             hex.EncodeToString(keys.Random(keys.MACKeySize)),
		keys.EnvName(keys.SM2SignName):                           hex.EncodeToString(sm2Key),
		"MZHUB_STORE_DSN":                                        u.String(),
		"MZHUB_BUS_PULSAR_URL":                                   pulsarURL,
		"MZHUB_MONITOR_CLICKHOUSE_ADDR":                          ch,
		"MZHUB_MONITOR_CLICKHOUSE_DATABASE":                      "mzhub_cluster_test",
		"MZHUB_DATA_DIR":                                         t.TempDir(),
		"MZHUB_PATHS_PARTNERS":                                   "../../configs/partners",
		"MZHUB_PATHS_ROUTES":                                     "../../configs/routes",
		"MZHUB_PATHS_MAPPINGS":                                   "../../configs/mappings",
		"MZHUB_FUNERAL_PARTNERS_DIR":                             "../../configs/partners/funeral",
	}
	addr := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MZHUB_TEST_AS_MAIN=1", "MZHUB_TEST_ARGS=serve --config "+filepath.Join("..", "..", "configs", "cluster.yaml")+" --listen "+addr)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	ready := false
	for !ready {
		select {
		case err := <-exited:
			t.Fatalf("cluster serve exited early (%v):\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("cluster serve never became ready:\n%s", logs.String())
		case <-time.After(250 * time.Millisecond):
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ready = resp.StatusCode == http.StatusOK
		if !ready {
			t.Logf("readyz %d %s", resp.StatusCode, body)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `mzhub_build_info{commit="unknown",profile="cluster"`) {
		t.Fatalf("metrics do not show the cluster profile:\n%.2000s", body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("cluster serve exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("cluster serve did not stop within 45s of SIGTERM:\n%s", logs.String())
	}
	for _, want := range []string{`"profile":"cluster"`, `"store":"postgres:`, `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s", want)
		}
	}
}
