package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onboardingScript is docs/onboarding.md's walk-through: its
// "```sh walkthrough" blocks in order, one bash script.
func onboardingScript(t *testing.T) string {
	t.Helper()
	script, blocks := docWalkthrough(t, "../../docs/onboarding.md")
	if blocks < 10 {
		t.Fatalf("docs/onboarding.md has %d walkthrough blocks, want the steps from tools to filed reports", blocks)
	}
	return script
}

// TestOnboardingWalkthroughParses: the walk-through is a valid bash script.
func TestOnboardingWalkthroughParses(t *testing.T) {
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(onboardingScript(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
}

// TestOnboardingWalkthrough follows docs/onboarding.md as an integrator
// would, block by block as one bash script from the repository root, with
// `mzhub` on the PATH (this test binary re-run as the real program): tools,
// a local sandbox with its partner, a first signed read and the refused
// unprefixed signature, a conformance run that fails over zero records,
// every kind pushed, updated, read back and withdrawn, the booking
// simulator and its passing report, the pushes' passing report, both
// JUnit files. It needs bash, curl and OpenSSL 3 (SM3 HMAC) and no other
// service, so plain `go test` runs it; .ci/run also runs it in its
// walkthrough step (MZHUB_TEST_WALKTHROUGH=1), where a missing tool fails
// instead of skipping.
func TestOnboardingWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the onboarding walk-through starts processes")
	}
	required := os.Getenv("MZHUB_TEST_WALKTHROUGH") != ""
	for _, tool := range [][]string{{"bash", "--version"}, {"curl", "--version"}, {"openssl", "mac", "-digest", "SM3", "-macopt", "hexkey:00", "HMAC"}} {
		c := exec.Command(tool[0], tool[1:]...)
		c.Stdin = strings.NewReader("x")
		if err := c.Run(); err != nil {
			if required {
				t.Fatalf("%s: %v (the onboarding walk-through needs bash, curl and OpenSSL 3 with SM3)", strings.Join(tool, " "), err)
			}
			t.Skipf("%s: %v: the onboarding walk-through needs bash, curl and OpenSSL 3 with SM3", strings.Join(tool, " "), err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	wrapper := "#!/bin/sh\nMZHUB_TEST_AS_MAIN=1 MZHUB_TEST_ARGS=\"$*\" exec '" + self + "'\n"
	if err := os.WriteFile(filepath.Join(bin, "mzhub"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -euo pipefail
trap 'rc=$?; if [ -n "${work:-}" ]; then
  if [ $rc -ne 0 ]; then for f in "$work"/*.log; do echo "== $f"; tail -n 40 "$f"; done; fi
  for p in "$work"/*.pid; do kill "$(cat "$p")" 2>/dev/null || true; done
  rm -rf "$work"; fi' EXIT
trap 'echo "walk-through: line $LINENO failed: $BASH_COMMAND" >&2' ERR
` + onboardingScript(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Dir = root
	// Port 0: several runs of this test on one machine never collide.
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), sandboxListenEnv+"=127.0.0.1:0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("the onboarding walk-through failed after %s: %v\n%s\nthe script (no -x: it loads secrets):\n%s", time.Since(start).Round(time.Millisecond), err, out.String(), script)
	}
	t.Logf("onboarding walk-through done in %s", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"sandbox ready", "cause: 0 records pushed to the sandbox store", "verdict: PASSED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, out.String())
		}
	}
	if dir := os.Getenv("MZHUB_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "onboarding-walkthrough.log"), out.Bytes(), 0o644)
	}
}
