package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// walkthroughScript returns the blocks of docs/operator.md fenced as
// "```sh walkthrough", in order, joined into one script.
func walkthroughScript(t *testing.T) string {
	t.Helper()
	script, blocks := docWalkthrough(t, "../../docs/operator.md")
	if blocks < 8 {
		t.Fatalf("docs/operator.md has %d walkthrough blocks, want the eight steps of section 9", blocks)
	}
	return script
}

// docWalkthrough returns the blocks of a document fenced as
// "```sh walkthrough", in order, joined into one script, and their number.
func docWalkthrough(t *testing.T, path string) (string, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	in, blocks := false, 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```sh walkthrough":
			in, blocks = true, blocks+1
			out.WriteString("\n# --- block " + strconv.Itoa(blocks) + "\n")
		case in && strings.TrimSpace(line) == "```":
			in = false
		case in:
			out.WriteString(line + "\n")
		}
	}
	return out.String(), blocks
}

// TestWalkthroughBlocksParse: the walkthrough in docs/operator.md is a
// valid bash script (every run of go test checks this much).
func TestWalkthroughBlocksParse(t *testing.T) {
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(walkthroughScript(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
}

// TestIntegrationOperatorWalkthrough runs section 9 of docs/operator.md,
// block by block as one bash script from the repository root: services,
// keys, simulated banks, two replicas, the first administrator, a partner
// and its push, a payment month, a failover. .ci/run sets
// MZHUB_TEST_WALKTHROUGH=1 in a step of its own, after the integration
// tests (the walkthrough uses the services' default database and ports).
func TestIntegrationOperatorWalkthrough(t *testing.T) {
	if os.Getenv("MZHUB_TEST_WALKTHROUGH") == "" {
		t.Skip("MZHUB_TEST_WALKTHROUGH not set: .ci/run runs the operator walkthrough in a step of its own")
	}
	script := `set -euo pipefail
trap 'rc=$?; if [ $rc -ne 0 ] && [ -n "${walk:-}" ]; then for f in "$walk"/*.log; do echo "== $f"; tail -n 40 "$f"; done; fi
  if [ -n "${walk:-}" ]; then for p in "$walk"/*.pid; do kill "$(cat "$p")" 2>/dev/null || true; done; fi' EXIT
set -x
` + walkthroughScript(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("the walkthrough failed after %s: %v\n%s", time.Since(start).Round(time.Second), err, out.String())
	}
	t.Logf("walkthrough done in %s", time.Since(start).Round(time.Second))
	if dir := os.Getenv("MZHUB_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "operator-walkthrough.log"), out.Bytes(), 0o644)
	}
}
