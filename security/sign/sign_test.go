package sign

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	exampleSecret, _ = hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	exampleTime      = time.Unix(1764273600, 0)
)

const (
	exampleKeyID = "fh-demo-01"
	exampleNonce = "3f1c9a7e5b2d4c6f8a0b1c2d3e4f5a6b"
	exampleBody  = `{"version":1,"name":"长青厅","category":"large","capacity":300,"price_fen":280000,"status":"available"}`
)

func verifier(now time.Time) *Verifier {
	return &Verifier{
		Secret: func(_ context.Context, id string) ([]byte, error) {
			if id == exampleKeyID {
				return exampleSecret, nil
			}
			return nil, ErrUnknownKey
		},
		Window:  5 * time.Minute,
		MaxBody: 1024,
		Now:     func() time.Time { return now },
	}
}

// serverRequest turns a client request into what a server handler sees.
func serverRequest(t *testing.T, c *http.Request) *http.Request {
	t.Helper()
	var body io.Reader
	if c.Body != nil {
		b, _ := io.ReadAll(c.Body)
		body = bytes.NewReader(b)
	}
	s := httptest.NewRequest(c.Method, c.URL.RequestURI(), body)
	s.Header = c.Header.Clone()
	return s
}

func signed(t *testing.T, method, target, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "https://hub.example"+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := SignAt(req, exampleKeyID, exampleSecret, exampleTime, exampleNonce); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *http.Request)
		now    time.Time
		want   error
	}{
		{"ok", nil, exampleTime, nil},
		{"ok at window edge", nil, exampleTime.Add(5 * time.Minute), nil},
		{"expired", nil, exampleTime.Add(5*time.Minute + time.Second), ErrExpired},
		{"future", nil, exampleTime.Add(-6 * time.Minute), ErrExpired},
		{"no signature", func(r *http.Request) { r.Header.Del(HeaderSignature) }, exampleTime, ErrMissing},
		{"no nonce", func(r *http.Request) { r.Header.Del(HeaderNonce) }, exampleTime, ErrMissing},
		{"short nonce", func(r *http.Request) { r.Header.Set(HeaderNonce, "abc") }, exampleTime, ErrMalformed},
		{"unknown key", func(r *http.Request) { r.Header.Set(HeaderKeyID, "nobody") }, exampleTime, ErrUnknownKey},
		{"bad timestamp", func(r *http.Request) { r.Header.Set(HeaderTimestamp, "yesterday") }, exampleTime, ErrMalformed},
		{"bad signature hex", func(r *http.Request) { r.Header.Set(HeaderSignature, "zz") }, exampleTime, ErrMalformed},
		{"other nonce", func(r *http.Request) { r.Header.Set(HeaderNonce, strings.Repeat("a", 32)) }, exampleTime, ErrInvalid},
		{"other timestamp", func(r *http.Request) { r.Header.Set(HeaderTimestamp, "1764273601") }, exampleTime, ErrInvalid},
		{"other method", func(r *http.Request) { r.Method = "PUT" }, exampleTime, ErrInvalid},
		{"other path", func(r *http.Request) {
			r.RequestURI = "/partner/v1/funeral/vehicles?a=1&b=2"
			r.URL.Path = "/partner/v1/funeral/vehicles"
		}, exampleTime, ErrInvalid},
		{"other query", func(r *http.Request) { r.RequestURI = "/partner/v1/funeral/halls?a=1&b=3" }, exampleTime, ErrInvalid},
		{"reordered query", func(r *http.Request) { r.RequestURI = "/partner/v1/funeral/halls?a=1&b=2" }, exampleTime, nil},
		{"body changed", func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"hall_id":"H02","status":"free"}`)) }, exampleTime, ErrDigest},
		{"body and digest changed", func(r *http.Request) {
			b := `{"hall_id":"H02","status":"free"}`
			r.Body = io.NopCloser(strings.NewReader(b))
			r.Header.Set(HeaderContentSM3, ContentSM3([]byte(b)))
		}, exampleTime, ErrInvalid},
		{"body too large", func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(strings.Repeat("x", 2000)))
			r.ContentLength = -1
		}, exampleTime, ErrBodyTooLarge},
		{"upper-case signature", func(r *http.Request) { r.Header.Set(HeaderSignature, strings.ToUpper(r.Header.Get(HeaderSignature))) }, exampleTime, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serverRequest(t, signed(t, "POST", "/partner/v1/funeral/halls?b=2&a=1", exampleBody))
			if tt.mutate != nil {
				tt.mutate(r)
			}
			res, err := verifier(tt.now).Verify(r)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err == nil {
				if res.KeyID != exampleKeyID || res.Nonce != exampleNonce {
					t.Fatalf("result %+v", res)
				}
				b, _ := io.ReadAll(r.Body)
				if string(b) != exampleBody {
					t.Fatalf("body not restored: %q", b)
				}
			}
		})
	}
}

func TestVerifyBehindStripPrefix(t *testing.T) {
	var got error
	h := http.StripPrefix("/partner", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, got = verifier(exampleTime).Verify(r)
	}))
	h.ServeHTTP(httptest.NewRecorder(), serverRequest(t, signed(t, "GET", "/partner/v1/funeral/halls?status=free&name=%E5%A4%A7%E5%8E%85+1", "")))
	if got != nil {
		t.Fatal(got)
	}
}

func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := verifier(time.Now()).Verify(r); err != nil {
			http.Error(w, err.Error(), 401)
		}
	}))
	defer srv.Close()
	c := &http.Client{Transport: &Transport{KeyID: exampleKeyID, Secret: exampleSecret}}
	resp, err := c.Post(srv.URL+"/partner/v1/x?q=1", "application/json", strings.NewReader(exampleBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&a=1", "a=1&a=2"},
		{"name=%E5%A4%A7%E5%8E%85+1&flag", "flag=&name=%E5%A4%A7%E5%8E%85%201"},
		{"x=a%2Fb&y=~._-", "x=a%2Fb&y=~._-"},
		{"k=%7e", "k=~"},
	}
	for _, tt := range tests {
		got, err := CanonicalQuery(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("CanonicalQuery(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := CanonicalQuery("a=%zz"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad escape: %v", err)
	}
}

// TestWorkedExample pins the example in docs/signing.md and checks it
// against OpenSSL's SM3 when the local openssl supports it.
func TestWorkedExample(t *testing.T) {
	req := signed(t, "PUT", "/sandbox/partner/v1/halls/H-001", exampleBody)
	cs, err := CanonicalString(Fields{
		Method: "PUT", Path: "/sandbox/partner/v1/halls/H-001", KeyID: exampleKeyID,
		Timestamp: "1764273600", Nonce: exampleNonce, ContentSM3: ContentSM3([]byte(exampleBody)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "content_sm3: %s\n", req.Header.Get(HeaderContentSM3))
	fmt.Fprintf(&b, "canonical:\n%s\n", cs)
	fmt.Fprintf(&b, "signature: %s\n", req.Header.Get(HeaderSignature))
	golden := filepath.Join("testdata", "worked_example.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("worked example changed (docs/signing.md must change too):\n%s", b.String())
	}

	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: skipping cross-check")
	}
	out, err := exec.Command("openssl", "mac", "-digest", "SM3", "-macopt", "hexkey:"+hex.EncodeToString(exampleSecret), "-in", writeTemp(t, cs), "HMAC").Output()
	if err != nil {
		t.Skipf("openssl mac with SM3 not supported here: %v", err)
	}
	if got := strings.ToLower(strings.TrimSpace(string(out))); got != req.Header.Get(HeaderSignature) {
		t.Fatalf("openssl HMAC-SM3 %s, Go %s", got, req.Header.Get(HeaderSignature))
	}
	out, err = exec.Command("openssl", "dgst", "-sm3", "-r", writeTemp(t, exampleBody)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := strings.Cut(string(out), " "); got != ContentSM3([]byte(exampleBody)) {
		t.Fatalf("openssl SM3 %s", got)
	}
}

func writeTemp(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEmptySM3(t *testing.T) {
	if ContentSM3(nil) != EmptySM3 {
		t.Fatal(ContentSM3(nil))
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("fh-demo-01", "1764273600", exampleNonce, "ab", "b=2&a=1")
	f.Fuzz(func(t *testing.T, kid, ts, nonce, sig, q string) {
		r := httptest.NewRequest("POST", "/x", strings.NewReader("{}"))
		r.URL.RawQuery = q
		r.Header.Set(HeaderKeyID, kid)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderNonce, nonce)
		r.Header.Set(HeaderContentSM3, EmptySM3)
		r.Header.Set(HeaderSignature, sig)
		if _, err := verifier(exampleTime).Verify(r); err == nil {
			t.Fatal("forged request verified")
		}
	})
}
