package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/security/sign"
)

// startSandboxCLI runs `mzhub sandbox` in-process until the test ends and
// returns its output once it is ready.
func startSandboxCLI(t *testing.T, args ...string) (*syncBuffer, *syncBuffer, func() int) {
	t.Helper()
	var out, errb syncBuffer
	env := &cliEnv{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Logger: hub.NewLogger(&errb, "info", "text")}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, 1)
	code := make(chan int, 1)
	go func() {
		c := dispatch(ctx, env, append([]string{"sandbox", "--listen", "127.0.0.1:0"}, args...))
		code <- c
		exited <- nil
	}()
	stop := func() int { cancel(); return <-code }
	t.Cleanup(func() { cancel() })
	awaitLog(t, &out, "sandbox ready", 30*time.Second, exited)
	return &out, &errb, stop
}

// TestSandboxCommand: `mzhub sandbox` serves the partner API under
// /sandbox/partner/v1/ with a ready partner whose secret is only in
// DIR/partner.env (0600), never in its output; a signed push is stored in
// its own store; a restart keeps the partner and its key; another partner
// in the same directory is refused.
func TestSandboxCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sb")
	out, errb, stop := startSandboxCLI(t, "--dir", dir)
	vars, err := readEnvFile(filepath.Join(dir, sandboxEnvFile))
	if err != nil {
		t.Fatal(err)
	}
	secret := vars["MZ_SECRET_HEX"]
	if len(secret) != 64 || vars["MZ_KEY_ID"] == "" || vars["MZ_PARTNER"] != "funeral.fh90" || !strings.HasSuffix(vars["MZ_BASE_URL"], "/sandbox") {
		t.Fatalf("partner.env: %v", vars)
	}
	if fi, err := os.Stat(filepath.Join(dir, sandboxEnvFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("partner.env mode: %v %v", fi.Mode(), err)
	}
	for _, want := range []string{vars["MZ_HUB_URL"] + "/sandbox/partner/v1/", "hosted: " + hostedSandbox, "key id:   " + vars["MZ_KEY_ID"],
		"partner.env (0600; not printed)", "mzhub conformance --role pusher --sandbox " + dir} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errb.String(), secret) || strings.Contains(out.String()+errb.String(), secret[:16]) {
		t.Fatal("the secret was printed")
	}

	key, _ := hex.DecodeString(secret)
	body := `{"version":1,"name":"长青厅","category":"large","capacity":300,"price_fen":280000,"status":"available"}`
	call := func(path string) (int, string) {
		req, _ := http.NewRequest("PUT", vars["MZ_HUB_URL"]+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := sign.Sign(req, vars["MZ_KEY_ID"], key); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := call("/sandbox/partner/v1/halls/H-001"); code != 200 || !strings.Contains(b, `"partner_id":"funeral.fh90"`) {
		t.Fatalf("signed push: %d %s", code, b)
	}
	if code, b := call("/partner/v1/halls/H-001"); code != 404 || !strings.Contains(b, "/sandbox/partner/v1") {
		t.Fatalf("production path on the sandbox: %d %s", code, b)
	}
	if c := stop(); c != 0 {
		t.Fatalf("exit %d", c)
	}

	out2, _, stop2 := startSandboxCLI(t, "--dir", dir)
	if !strings.Contains(out2.String(), "key id:   "+vars["MZ_KEY_ID"]) {
		t.Fatalf("a restart issued another key:\n%s", out2.String())
	}
	stop2()
	rep, err := runLocalPusher(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Name == "push/hall/create" && !r.Passed {
			t.Errorf("the push is not in the sandbox store: %+v", r)
		}
	}
	code, _, stderr := runCLI(t, "sandbox", "--dir", dir, "--listen", "127.0.0.1:0", "--partner", "cemetery.cm90")
	if code != 1 || !strings.Contains(stderr, "already holds partner funeral.fh90") {
		t.Fatalf("another partner in the same directory: %d %s", code, stderr)
	}
}
