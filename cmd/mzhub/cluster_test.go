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
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

// TestIntegrationClusterProfile starts two replicas of `mzhub serve` on the
// shipped cluster profile against real PostgreSQL, Pulsar and ClickHouse,
// with keys from the environment only. It checks they become ready and
// serve metrics, that each periodic job's lease is held by one of them, that
// the other takes every job over when the first stops with SIGTERM, and
// that both stop cleanly.
func TestIntegrationClusterProfile(t *testing.T) {
	pg, pulsarURL, ch := os.Getenv("MZHUB_TEST_POSTGRES"), os.Getenv("MZHUB_TEST_PULSAR"), os.Getenv("MZHUB_TEST_CLICKHOUSE")
	if pg == "" || pulsarURL == "" || ch == "" {
		t.Skip("MZHUB_TEST_POSTGRES, MZHUB_TEST_PULSAR and MZHUB_TEST_CLICKHOUSE must all be set (.ci/run starts the three services)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
		keys.EnvName(keys.DisbursementPersonName):                hex.EncodeToString(keys.Random(keys.MACKeySize)),
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
	// Two replicas on the same services.
	var reps []*replica
	for _, node := range []string{"replica-a", "replica-b"} {
		reps = append(reps, startReplica(t, ctx, node, env))
	}
	resp, err := http.Get("http://" + reps[0].metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `mzhub_build_info{commit="unknown",profile="cluster"`) {
		t.Fatalf("metrics do not show the cluster profile:\n%.2000s", body)
	}

	// Each replica is a member; each periodic job runs on one of them.
	db, err := store.Open(ctx, store.Config{Driver: "postgres", DSN: u.String(), MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holders := func() map[string]string {
		t.Helper()
		rows, err := db.QueryContext(ctx, `SELECT name, holder FROM leases WHERE expires_ms > $1`, time.Now().UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var name, holder string
			if err := rows.Scan(&name, &holder); err != nil {
				t.Fatal(err)
			}
			out[name] = holder
		}
		return out
	}
	singletons := []string{"monitor.alert_rules", "monitor.expectations", "monitor.quality", "routes.replay", "funeral.relay", "security.maintenance"}
	var held map[string]string
	waitUntil(t, ctx, "both members and every job's lease", reps, func() bool {
		held = holders()
		for _, name := range append([]string{"replica/replica-a", "replica/replica-b"}, singletons...) {
			if held[name] == "" {
				return false
			}
		}
		return true
	})
	t.Logf("leases held: %v", held)
	// Stop the replica replaying dead letters: the other takes its jobs over.
	first := held["routes.replay"]
	var gone, stays *replica
	for _, r := range reps {
		if r.node == first {
			gone = r
		} else {
			stays = r
		}
	}
	gone.stop(t)
	stopped := time.Now()
	waitUntil(t, ctx, "the other replica to take every job", reps, func() bool {
		held = holders()
		if held["replica/"+gone.node] != "" {
			return false
		}
		for _, name := range singletons {
			if held[name] != stays.node {
				return false
			}
		}
		return true
	})
	t.Logf("%s stopped; %s took every job within %s: %v", gone.node, stays.node, time.Since(stopped).Round(100*time.Millisecond), held)
	stays.stop(t)
	for _, r := range reps {
		for _, want := range []string{`"profile":"cluster"`, `"store":"postgres:`, `"msg":"stopped"`, `"msg":"lease taken"`} {
			if !strings.Contains(r.logs.String(), want) {
				t.Errorf("%s: logs lack %s", r.node, want)
			}
		}
	}
}

// replica is one `mzhub serve` child process.
type replica struct {
	node, addr, metrics string
	cmd                 *exec.Cmd
	logs                *syncBuffer
	exited              chan error
}

// startReplica starts `mzhub serve` on the cluster profile as node and
// waits until it is ready.
func startReplica(t *testing.T, ctx context.Context, node string, env map[string]string) *replica {
	t.Helper()
	r := &replica{node: node, addr: freePort(t), metrics: freePort(t), logs: &syncBuffer{}, exited: make(chan error, 1)}
	r.cmd = exec.Command(os.Args[0], "-test.run=^$")
	r.cmd.Env = append(os.Environ(), "MZHUB_TEST_AS_MAIN=1", "MZHUB_NODE="+node, "MZHUB_HTTP_METRICS_LISTEN="+r.metrics,
		"MZHUB_TEST_ARGS=serve --config "+filepath.Join("..", "..", "configs", "cluster.yaml")+" --listen "+r.addr)
	for k, v := range env {
		r.cmd.Env = append(r.cmd.Env, k+"="+v)
	}
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	go func() { r.exited <- r.cmd.Wait() }()
	// Ready once it logged that every component started (and the store
	// answers /readyz's check).
	within := time.Minute
	if d, ok := ctx.Deadline(); ok {
		within = time.Until(d)
	}
	awaitLog(t, r.logs, `"msg":"components started"`, within, r.exited)
	resp, err := http.Get("http://" + r.addr + "/readyz")
	if err != nil {
		t.Fatalf("%s: readyz: %v", node, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s readyz %d once its components started: %s", node, resp.StatusCode, body)
	}
	return r
}

// stop sends SIGTERM and waits for a clean exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.exited:
		if err != nil {
			t.Fatalf("%s exited with %v after SIGTERM:\n%s", r.node, err, r.logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("%s did not stop within 45s of SIGTERM:\n%s", r.node, r.logs.String())
	}
}

// waitUntil waits until cond holds, looking again each time a replica
// logs something (leases taken and given up are logged), until ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, reps []*replica, cond func() bool) {
	t.Helper()
	for {
		cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		for _, r := range reps {
			_, more := r.logs.written("")
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(more)})
		}
		if cond() {
			return
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
