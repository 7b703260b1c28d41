package examples_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// documented is every check each example must report as "ok": the push,
// the read-back, the update, and each problem code of the spec a client
// can provoke (ip_not_allowed, param_not_allowed, unauthenticated,
// internal and unavailable need another address or a failing hub).
var documented = []string{
	"push", "read back", "update", "idempotent resend", "list",
	"signature_missing", "signature_invalid", "timestamp_expired", "unknown_key", "nonce_reused",
	"bad_path", "headers_too_large", "body_too_large", "unsupported_media_type", "bad_json",
	"validation_failed", "not_found", "method_not_allowed", "forbidden",
	"stale_version", "version_conflict", "precondition_failed", "idempotency_key_reused",
	"rate_limited",
}

// example is one client program and how to run it from the repository root.
type example struct {
	lang   string
	needs  []string // programs that must be installed
	argv   []string // as examples/README.md runs it
	prefix string   // the hall id prefix the example pushes under
	// again, when set, runs the program as built by a run of argv,
	// without its build tool (Maven's start-up costs more than the run).
	again func(root string) ([]string, error)
}

var examples = []example{
	{lang: "go", needs: []string{"go"}, argv: []string{"go", "run", "./examples/go"}, prefix: "H-GO-"},
	{lang: "python", needs: []string{"python3"}, argv: []string{"python3", "examples/python/mzhub_example.py"}, prefix: "H-PY-"},
	{lang: "java", needs: []string{"java", "mvn"}, argv: []string{"mvn", "-q", "-B", "-Dstyle.color=never", "-f", "examples/java/pom.xml", "compile", "exec:java"}, prefix: "H-JAVA-",
		again: func(root string) ([]string, error) {
			// The pom writes the dependencies' class path at compile.
			cp, err := os.ReadFile(filepath.Join(root, "examples/java/target/classpath.txt"))
			if err != nil {
				return nil, err
			}
			return []string{"java", "-cp", "examples/java/target/classes" + string(os.PathListSeparator) + strings.TrimSpace(string(cp)),
				"cn.gov.sh.mca.mzhub.example.MzhubExample"}, nil
		}},
}

// TestIntegrationExamples starts a hub, registers a funeral home per
// example and environment and runs each example against the hub's partner
// API and against its sandbox (/sandbox/partner/v1/, the prefix signed
// like the rest of the path): every example must exit 0
// having reported each documented answer as "ok", the hall it pushed must
// be stored as its last accepted version, and the same program with a
// wrong secret must exit non-zero (so an example cannot pass by not
// checking). .ci/run sets MZHUB_TEST_EXAMPLES=1.
func TestIntegrationExamples(t *testing.T) {
	if os.Getenv("MZHUB_TEST_EXAMPLES") == "" {
		t.Skip("MZHUB_TEST_EXAMPLES not set: .ci/run runs the client examples (Go, Python 3, Java 17 with Maven) against a hub")
	}
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		fc := funeral.ConfigFrom(*c)
		fc.PartnerReload = 20 * time.Millisecond
		if err := config.SetSection(c, funeral.ConfigKey, fc); err != nil {
			t.Fatal(err)
		}
		// A low per-partner rate so that each example reaches it in a
		// few dozen reads whatever the machine's load.
		c.Security.PartnerAPI.PartnerRate = 10
		c.Security.PartnerAPI.PartnerBurst = 20
	}})
	cfg := srv.Hub.Config()
	limit := cfg.Security.PartnerAPI.MaxBodyBytes // the partner API's one body limit
	ctx := context.Background()
	sync := srv.Hub.PartnerSync()
	if sync == nil {
		t.Fatal("the hub serves no funeral partners")
	}
	partners, err := funeral.OpenPartnerStore(ctx, srv.Hub.Store(), srv.Hub.Security().Fields, srv.Hub.Security().Audit, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		for _, api := range []struct{ name, prefix string }{{"production", ""}, {"sandbox", "/sandbox"}} {
			t.Run(ex.lang+"/"+api.name, func(t *testing.T) {
				for _, prog := range ex.needs {
					if _, err := exec.LookPath(prog); err != nil {
						t.Fatalf("%s is not installed: the %s example needs it (.ci/run installs maven; Python 3 and Java 17 come with the CI machine)", prog, ex.lang)
					}
				}
				// A partner per run: each has its own rate limit.
				iss, err := partners.Add(ctx, funeral.Partner{ID: "funeral.example-" + ex.lang + "-" + api.name, Name: "示例殡仪馆 " + ex.lang,
					Role: funeral.RoleFuneralHome, Environments: []string{api.name}, AllowIPs: []string{"127.0.0.1"}}, "test:examples")
				if err != nil {
					t.Fatal(err)
				}
				v, err := partners.Version(ctx)
				if err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := sync.WaitApplied(wctx, v); err != nil {
					t.Fatalf("the hub did not take the partner: %v", err)
				}
				base := srv.URL + api.prefix
				env := []string{"MZ_BASE_URL=" + base, "MZ_KEY_ID=" + iss.KeyID, "MZ_SECRET_HEX=" + iss.SecretHex,
					"MZHUB_MAX_BODY_BYTES=" + strconv.FormatInt(limit, 10)}

				argv := ex.argv
				if api.name != "production" && ex.again != nil {
					if argv, err = ex.again(root); err != nil {
						t.Fatalf("the %s example as built by %s: %v", ex.lang, ex.argv[0], err)
					}
				}
				out, code := runExample(t, root, ex.lang, argv, env)
				t.Logf("%s example against %s:\n%s", ex.lang, base, out)
				if code != 0 {
					t.Fatalf("the %s example exited %d, want 0", ex.lang, code)
				}
				for _, name := range documented {
					if !regexp.MustCompile(`(?m)^ok +` + regexp.QuoteMeta(name) + ` `).MatchString(out) {
						t.Errorf("the %s example did not report %q as answered as documented", ex.lang, name)
					}
				}
				if strings.Contains(out, "FAIL") {
					t.Errorf("the %s example reported a FAIL yet exited 0", ex.lang)
				}
				checkStored(t, base, iss.KeyID, iss.SecretHex, ex.prefix)

				if base != srv.URL {
					return
				}
				wrong := strings.Repeat("0", 64)
				if ex.again != nil {
					if argv, err = ex.again(root); err != nil {
						t.Fatalf("the %s example as built by %s: %v", ex.lang, ex.argv[0], err)
					}
				}
				out, code = runExample(t, root, ex.lang, argv, append(env[:2:2], "MZ_SECRET_HEX="+wrong, env[3]))
				if code != 1 || !strings.Contains(out, "FAIL push and read back") || !strings.Contains(out, "signature_invalid") {
					t.Errorf("the %s example with a wrong secret exited %d; want 1, the push refused as signature_invalid; output:\n%s", ex.lang, code, out)
				}
			})
		}
	}
}

// runExample runs the example program argv of lang from root with env
// added and returns its combined output and exit code.
func runExample(t *testing.T, root, lang string, argv, env []string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the %s example did not finish in 4 minutes:\n%s", lang, out.String())
	}
	// Maven's console may colour its own lines even in batch mode.
	text := ansi.ReplaceAllString(out.String(), "")
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return text, ee.ExitCode()
		}
		t.Fatalf("run the %s example: %v", lang, err)
	}
	return text, 0
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// checkStored lists the partner's halls with the hub's own signing code
// and requires the example's hall at version 3 (its last accepted push)
// with the price it pushed.
func checkStored(t *testing.T, base, keyID, secretHex, prefix string) {
	t.Helper()
	secret, err := hex.DecodeString(secretHex)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &sign.Transport{KeyID: keyID, Secret: secret}, Timeout: 30 * time.Second}
	var page struct {
		Items []struct {
			ID      string `json:"id"`
			Version int    `json:"version"`
			Data    struct {
				PriceFen int64 `json:"price_fen"`
			} `json:"data"`
		} `json:"items"`
	}
	for attempt := 0; ; attempt++ {
		resp, err := client.Get(base + "/partner/v1/halls?page_size=200")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 5 {
			resp.Body.Close()
			s, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(s, 1)) * time.Second) // the hub's own back-off instruction
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("list halls: %d %v", resp.StatusCode, err)
		}
		break
	}
	var found []string
	for _, it := range page.Items {
		if strings.HasPrefix(it.ID, prefix) {
			found = append(found, fmt.Sprintf("%s v%d %d fen", it.ID, it.Version, it.Data.PriceFen))
			if it.Version != 3 || it.Data.PriceFen != 300000 {
				t.Errorf("stored hall %s: version %d, %d fen; want version 3, 300000 fen", it.ID, it.Version, it.Data.PriceFen)
			}
		}
	}
	if len(found) != 1 {
		t.Errorf("halls stored under %s: %v, want exactly one", prefix, found)
	}
}
