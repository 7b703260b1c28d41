package examples_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	hubsign "github.com/shanghai-mca/mzhub/security/sign"
)

// signCases need canonicalising: the sandbox prefix, Chinese path
// segments, unsorted and repeated parameters, "+" and reserved characters.
var signCases = []struct{ Method, Target, Body string }{
	{"PUT", "/sandbox/partner/v1/halls/H-001", `{"version":1,"name":"长青厅","category":"large","capacity":300,"price_fen":280000,"status":"available"}`},
	{"GET", "/partner/v1/halls?page_size=50&updated_since=2026-12-02T00:00:00%2B08:00", ""},
	{"GET", "/partner/v1/halls?b=2&a=1&a=0&name=%E5%A4%A7%E5%8E%85+1&flag&=x&&", ""},
	{"GET", "/partner/v1/%E5%A4%A7%E5%8E%85/x~y_z.-", ""},
	{"DELETE", "/partner/v1/halls/H-1?q=a%2Fb%26c", ""},
}

// pythonSigner signs each case with examples/python's sign_headers and
// prints the signatures as JSON; with "gmssl" as argument it hides
// hashlib's SM3 first, so the example takes its PyPI fallback.
const pythonSigner = `
import hashlib, importlib.util, json, sys
if sys.argv[1:] == ["gmssl"]:
    hashlib.algorithms_available = set(hashlib.algorithms_available) - {"sm3"}
spec = importlib.util.spec_from_file_location("mzhub_example", "python/mzhub_example.py")
ex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ex)
cases = json.load(sys.stdin)
secret = bytes.fromhex(cases["secret"])
out = [ex.sign_headers(c["Method"], c["Target"], c["Body"].encode(), "fh-demo-01", secret,
                       timestamp=1764273600, nonce="3f1c9a7e5b2d4c6f8a0b1c2d3e4f5a6b") for c in cases["cases"]]
json.dump({"source": ex.SM3_SOURCE, "headers": out}, sys.stdout)
`

// TestPythonSignerAgreesWithTheHub: the Python example's signing code
// gives the hub's signature (security/sign) for every case, with hashlib's
// SM3 and, where the gmssl package is installed, with its fallback.
func TestPythonSignerAgreesWithTheHub(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	in, _ := json.Marshal(map[string]any{"secret": hex.EncodeToString(secret), "cases": signCases})
	for _, variant := range []string{"hashlib", "gmssl"} {
		t.Run(variant, func(t *testing.T) {
			if variant == "gmssl" && exec.Command("python3", "-c", "import gmssl").Run() != nil {
				t.Skip("the gmssl package is not installed (pip install gmssl): its fallback is not checked here")
			}
			cmd := exec.Command("python3", "-c", pythonSigner, variant)
			cmd.Stdin = bytes.NewReader(in)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python3: %v\n%s", err, stderr.String())
			}
			var got struct {
				Source  string
				Headers []map[string]string
			}
			if err := json.Unmarshal(out, &got); err != nil || len(got.Headers) != len(signCases) {
				t.Fatalf("python3 printed %s (%v)", out, err)
			}
			if !strings.Contains(got.Source, variant) {
				t.Errorf("SM3 from %q, want %s", got.Source, variant)
			}
			for i, tc := range signCases {
				u, err := url.Parse(tc.Target)
				if err != nil {
					t.Fatal(err)
				}
				cs, err := hubsign.CanonicalString(hubsign.Fields{Method: tc.Method, Path: u.Path, RawQuery: u.RawQuery,
					KeyID: "fh-demo-01", Timestamp: "1764273600", Nonce: "3f1c9a7e5b2d4c6f8a0b1c2d3e4f5a6b",
					ContentSM3: hubsign.ContentSM3([]byte(tc.Body))})
				if err != nil {
					t.Fatal(err)
				}
				h := got.Headers[i]
				if want := hubsign.ContentSM3([]byte(tc.Body)); h["X-MZ-Content-SM3"] != want {
					t.Errorf("%s %s: content SM3 %s, hub %s", tc.Method, tc.Target, h["X-MZ-Content-SM3"], want)
				}
				if want := hubsign.MAC(secret, cs); h["X-MZ-Signature"] != want {
					t.Errorf("%s %s: signature %s, hub %s (hub's canonical string:\n%s)", tc.Method, tc.Target, h["X-MZ-Signature"], want, cs)
				}
			}
		})
	}
}
