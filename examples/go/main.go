// Command go is a small client of the mzhub funeral partner API
// (docs/api/partner.yaml) in Go: it signs its requests with MZ-HMAC-SM3
// (docs/signing.md), pushes a hall, reads it back, updates it with
// If-Match, and then provokes every problem the spec documents that a
// client can cause, printing each answer. It exits 1 when an answer is not
// the documented one.
//
// It needs only the standard library and github.com/emmansun/gmsm (SM3):
//
//	MZ_BASE_URL=http://127.0.0.1:8080 MZ_KEY_ID=... MZ_SECRET_HEX=... go run ./examples/go
//
// MZ_BASE_URL is the hub's base URL without /partner/v1 (for the sandbox add
// its prefix: https://host/sandbox). MZHUB_MAX_BODY_BYTES is the body limit
// to exceed (default 1048576).
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"
)

// client signs and sends partner API requests.
type client struct {
	base   *url.URL
	keyID  string
	secret []byte
	http   *http.Client
}

// answer is what the hub replied.
type answer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Problem problem
}

// problem is an RFC 9457 problem+json body with the hub's extensions.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func sm3Hex(b []byte) string {
	sum := sm3.Sum(b)
	return hex.EncodeToString(sum[:])
}

// escape percent-encodes every byte outside RFC 3986's unreserved set
// (and outside "/" when keepSlash), upper-case hex.
func escape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func canonicalQuery(raw string) string {
	type pair struct{ k, v string }
	var ps []pair
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		ps = append(ps, pair{escape(k, false), escape(v, false)})
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].k != ps[j].k {
			return ps[i].k < ps[j].k
		}
		return ps[i].v < ps[j].v
	})
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// sign sets the five X-MZ-* headers on req for body, as signed at ts with nonce.
func sign(req *http.Request, body []byte, keyID string, secret []byte, ts time.Time, nonce string) {
	path := req.URL.Path
	if path == "" {
		path = "/"
	}
	contentSM3 := sm3Hex(body)
	stamp := strconv.FormatInt(ts.Unix(), 10)
	canonical := strings.Join([]string{"MZ-HMAC-SM3", strings.ToUpper(req.Method), escape(path, true),
		canonicalQuery(req.URL.RawQuery), keyID, stamp, nonce, contentSM3}, "\n")
	mac := hmac.New(sm3.New, secret)
	mac.Write([]byte(canonical))
	req.Header.Set("X-MZ-Key-Id", keyID)
	req.Header.Set("X-MZ-Timestamp", stamp)
	req.Header.Set("X-MZ-Nonce", nonce)
	req.Header.Set("X-MZ-Content-SM3", contentSM3)
	req.Header.Set("X-MZ-Signature", hex.EncodeToString(mac.Sum(nil)))
}

func newNonce() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// request builds an unsigned request for path (with /partner/v1) under the base URL.
func (c *client) request(method, path string, body []byte) *http.Request {
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	u.RawQuery = q
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		panic(err) // the paths are this program's own
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// send sends req with body as it is (signed or not).
func (c *client) send(req *http.Request, body []byte) (answer, error) {
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode, Header: resp.Header}
	if a.Body, err = io.ReadAll(resp.Body); err != nil {
		return a, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(a.Body, &a.Problem); err != nil {
			return a, fmt.Errorf("undecodable problem answer: %w", err)
		}
	}
	return a, nil
}

// call signs and sends a request. A 429 is waited out (Retry-After) and
// the request signed afresh, at most three times: a retry must never reuse
// a nonce.
func (c *client) call(method, path string, body []byte, header http.Header) (answer, error) {
	_, a, err := c.signedCall(method, path, body, header)
	return a, err
}

// signedCall is call that also returns the request last sent.
func (c *client) signedCall(method, path string, body []byte, header http.Header) (*http.Request, answer, error) {
	for attempt := 1; ; attempt++ {
		req := c.request(method, path, body)
		for k, v := range header {
			req.Header[k] = v
		}
		sign(req, body, c.keyID, c.secret, time.Now(), newNonce())
		a, err := c.send(req, body)
		if err != nil || a.Status != http.StatusTooManyRequests || attempt == 3 {
			return req, a, err
		}
		wait := retryAfter(a)
		fmt.Printf("     (rate limited, retrying in %s)\n", wait)
		time.Sleep(wait)
	}
}

func retryAfter(a answer) time.Duration {
	s, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if err != nil || s < 1 {
		s = 1
	}
	return time.Duration(s) * time.Second
}

// hall is the Hall schema of the spec.
type hall struct {
	Version     int64  `json:"version"`
	Name        string `json:"name"`
	Category    string `json:"category"`
	Capacity    int    `json:"capacity"`
	PriceFen    int64  `json:"price_fen"`
	Status      string `json:"status"`
	Description string `json:"description,omitempty"`
	UpdatedAt   string `json:"updated_at,omitempty"`
}

// hallRecord is a HallRecord as the hub returns it.
type hallRecord struct {
	ID       string `json:"id"`
	Version  int64  `json:"version"`
	Revision int64  `json:"revision"`
	Data     hall   `json:"data"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// run holds the outcome of the checks.
type run struct{ failed, passed int }

func (r *run) report(ok bool, name, format string, args ...any) {
	mark := "ok  "
	if ok {
		r.passed++
	} else {
		r.failed++
		mark = "FAIL"
	}
	fmt.Printf("%s %-24s %s\n", mark, name, fmt.Sprintf(format, args...))
}

// expect reports whether a is the documented problem: status and code, a
// type URI ending in the code, and the extra check. It prints the request
// id, the one to quote to the bureau, when the hub sent one.
func (r *run) expect(name string, a answer, err error, status int, code string, extra func(answer) error) {
	if err != nil {
		r.report(false, name, "request failed: %v", err)
		return
	}
	p := a.Problem
	var why []string
	if a.Status != status || p.Code != code {
		why = append(why, fmt.Sprintf("want %d %s", status, code))
	}
	if p.Code != "" && !strings.HasSuffix(p.Type, "/"+p.Code) {
		why = append(why, "type "+p.Type+" does not name the code")
	}
	if extra != nil && len(why) == 0 {
		if err := extra(a); err != nil {
			why = append(why, err.Error())
		}
	}
	msg := fmt.Sprintf("%d %s: %s", a.Status, p.Code, p.Detail)
	for _, e := range p.Errors {
		msg += fmt.Sprintf(" [%s: %s]", e.Field, e.Reason)
	}
	if p.RequestID != "" {
		msg += " (request " + p.RequestID + ")"
	}
	if len(why) > 0 {
		msg += " -- " + strings.Join(why, "; ")
	}
	r.report(len(why) == 0, name, "%s", msg)
}

func main() {
	os.Exit(mainCode())
}

func mainCode() int {
	base, keyID, secretHex := os.Getenv("MZ_BASE_URL"), os.Getenv("MZ_KEY_ID"), os.Getenv("MZ_SECRET_HEX")
	if base == "" || keyID == "" || secretHex == "" {
		fmt.Fprintln(os.Stderr, "set MZ_BASE_URL, MZ_KEY_ID and MZ_SECRET_HEX (the partner's key id and its 64-hex-character secret)")
		return 2
	}
	u, err := url.Parse(base)
	secret, err2 := hex.DecodeString(secretHex)
	if err != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "MZ_BASE_URL must be a URL and MZ_SECRET_HEX hex")
		return 2
	}
	limit := int64(1 << 20)
	if s := os.Getenv("MZHUB_MAX_BODY_BYTES"); s != "" {
		if limit, err = strconv.ParseInt(s, 10, 64); err != nil || limit < 1 {
			fmt.Fprintln(os.Stderr, "MZHUB_MAX_BODY_BYTES must be a positive number of bytes")
			return 2
		}
	}
	c := &client{base: u, keyID: keyID, secret: secret, http: &http.Client{Timeout: 30 * time.Second}}
	r := &run{}
	hallID := "H-GO-" + newNonce()[:8]
	path := "/partner/v1/halls/" + hallID
	if err := pushAndRead(c, r, path, hallID); err != nil {
		fmt.Println("FAIL push and read back:", err)
		return 1
	}
	problems(c, r, path, limit)
	fmt.Printf("examples/go: %d answers as documented, %d not\n", r.passed, r.failed)
	if r.failed > 0 {
		return 1
	}
	return 0
}

// pushAndRead pushes version 1 of a hall, reads it back, and pushes
// version 2 based on the read's ETag.
func pushAndRead(c *client, r *run, path, id string) error {
	now := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
	v1 := hall{Version: 1, Name: "长青厅", Category: "large", Capacity: 300, PriceFen: 280000, Status: "available", UpdatedAt: now}
	a, err := c.call("PUT", path, mustJSON(v1), nil)
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("push: %d %s %s", a.Status, a.Problem.Code, a.Problem.Detail)
	}
	r.report(true, "push", "PUT %s version 1: 200, ETag %s", path, a.Header.Get("ETag"))

	a, err = c.call("GET", path, nil, nil)
	if err != nil {
		return err
	}
	var rec hallRecord
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &rec) != nil {
		return fmt.Errorf("read back: %d %s", a.Status, a.Body)
	}
	if rec.ID != id || rec.Data.Name != v1.Name || rec.Data.PriceFen != v1.PriceFen || rec.Version != 1 {
		return fmt.Errorf("read back %s: got %+v", path, rec)
	}
	etag := a.Header.Get("ETag")
	r.report(true, "read back", "GET %s: version %d, revision %d, %s %d fen", path, rec.Version, rec.Revision, rec.Data.Name, rec.Data.PriceFen)

	v2 := v1
	v2.Version, v2.PriceFen = 2, 300000
	a, err = c.call("PUT", path, mustJSON(v2), http.Header{"If-Match": {etag}})
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("update with If-Match %s: %d %s", etag, a.Status, a.Problem.Code)
	}
	r.report(true, "update", "PUT %s version 2 with If-Match %s: 200, ETag %s", path, etag, a.Header.Get("ETag"))

	// The same version with the same content is answered as before.
	a, err = c.call("PUT", path, mustJSON(v2), nil)
	if err != nil {
		return err
	}
	r.report(a.Status == http.StatusOK, "idempotent resend", "PUT %s version 2 again: %d", path, a.Status)

	// An incremental read: the halls stored in the last hour. The query
	// ("+08:00" escaped) is part of what is signed.
	since := time.Now().Add(-time.Hour).In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
	q := url.Values{"page_size": {"200"}, "updated_since": {since}}
	a, err = c.call("GET", "/partner/v1/halls?"+q.Encode(), nil, nil)
	if err != nil {
		return err
	}
	var page struct {
		Items []hallRecord `json:"items"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &page) != nil {
		return fmt.Errorf("list: %d %s", a.Status, a.Body)
	}
	found := false
	for _, it := range page.Items {
		found = found || it.ID == id && it.Version == 2
	}
	r.report(found, "list", "GET /partner/v1/halls?%s: %d halls, %s at version 2 among them: %t", q.Encode(), len(page.Items), id, found)
	return nil
}

// problems provokes each problem a client can cause and checks the answer.
func problems(c *client, r *run, path string, limit int64) {
	valid := mustJSON(hall{Version: 3, Name: "长青厅", Category: "large", Capacity: 300, PriceFen: 300000, Status: "available"})

	// Authentication (docs/signing.md): each is refused before the body is looked at.
	req := c.request("PUT", path, valid)
	a, err := c.send(req, valid)
	r.expect("signature_missing", a, err, 401, "signature_missing", nil)

	req = c.request("PUT", path, valid)
	sign(req, valid, c.keyID, c.secret, time.Now(), newNonce())
	tampered := bytes.Replace(valid, []byte("300000"), []byte("000001"), 1)
	a, err = c.send(req, tampered) // the body changed after signing
	r.expect("signature_invalid", a, err, 401, "signature_invalid", nil)

	req = c.request("PUT", path, valid)
	sign(req, valid, c.keyID, c.secret, time.Now().Add(-time.Hour), newNonce())
	a, err = c.send(req, valid)
	r.expect("timestamp_expired", a, err, 401, "timestamp_expired", nil)

	req = c.request("PUT", path, valid)
	sign(req, valid, "no-such-key-"+newNonce()[:8], c.secret, time.Now(), newNonce())
	a, err = c.send(req, valid)
	r.expect("unknown_key", a, err, 401, "unknown_key", nil)

	req, first, err := c.signedCall("GET", path, nil, nil)
	if err == nil && first.Status != http.StatusOK {
		err = fmt.Errorf("the first send answered %d", first.Status)
	}
	if err == nil {
		a, err = c.send(req, nil) // the same signed request again: a replay
	}
	r.expect("nonce_reused", a, err, 401, "nonce_reused", nil)

	// The request itself.
	req = c.request("GET", "/partner/v1/halls//"+path[len("/partner/v1/halls/"):], nil)
	sign(req, nil, c.keyID, c.secret, time.Now(), newNonce())
	a, err = c.send(req, nil)
	r.expect("bad_path", a, err, 400, "bad_path", nil)

	a, err = c.call("GET", path, nil, http.Header{"X-Padding": {strings.Repeat("a", 64<<10)}})
	r.expect("headers_too_large", a, err, 431, "headers_too_large", nil)

	big := append([]byte(`{"version":3,"description":"`), bytes.Repeat([]byte("x"), int(limit))...)
	big = append(big, `"}`...)
	// Expect: 100-continue lets the hub refuse by Content-Length before the body is sent.
	a, err = c.call("PUT", path, big, http.Header{"Expect": {"100-continue"}})
	r.expect("body_too_large", a, err, 413, "body_too_large", nil)

	a, err = c.call("PUT", path, valid, http.Header{"Content-Type": {"text/plain"}})
	r.expect("unsupported_media_type", a, err, 415, "unsupported_media_type", nil)

	a, err = c.call("PUT", path, []byte(`{"version":3,`), nil)
	r.expect("bad_json", a, err, 400, "bad_json", nil)

	a, err = c.call("PUT", path, mustJSON(hall{Version: 3, Name: "长青厅", Category: "large", Capacity: 300, PriceFen: -1, Status: "available"}), nil)
	r.expect("validation_failed", a, err, 422, "validation_failed", func(a answer) error {
		for _, e := range a.Problem.Errors {
			if e.Field == "/price_fen" {
				return nil
			}
		}
		return fmt.Errorf("no error names the JSON pointer /price_fen: %+v", a.Problem.Errors)
	})

	a, err = c.call("GET", "/partner/v1/halls/H-NONE-"+newNonce()[:8], nil, nil)
	r.expect("not_found", a, err, 404, "not_found", nil)

	a, err = c.call("POST", path, valid, nil)
	r.expect("method_not_allowed", a, err, 405, "method_not_allowed", func(a answer) error {
		if a.Header.Get("Allow") == "" {
			return errors.New("no Allow header")
		}
		return nil
	})

	burial := []byte(`{"version":1,"deceased_name":"张三","burial_date":"2026-11-27","burial_type":"tree","plot_code":"A-1"}`)
	a, err = c.call("PUT", "/partner/v1/burials/B-1", burial, nil)
	r.expect("forbidden", a, err, 403, "forbidden", nil)

	// Versions and concurrency (the hall is at version 2).
	old := mustJSON(hall{Version: 1, Name: "长青厅", Category: "large", Capacity: 300, PriceFen: 280000, Status: "available"})
	a, err = c.call("PUT", path, old, nil)
	r.expect("stale_version", a, err, 409, "stale_version", nil)

	other := mustJSON(hall{Version: 2, Name: "长青厅", Category: "large", Capacity: 250, PriceFen: 300000, Status: "available"})
	a, err = c.call("PUT", path, other, nil)
	r.expect("version_conflict", a, err, 409, "version_conflict", nil)

	a, err = c.call("PUT", path, valid, http.Header{"If-Match": {`"999999"`}})
	r.expect("precondition_failed", a, err, 412, "precondition_failed", nil)

	key := http.Header{"Idempotency-Key": {"go-example-" + newNonce()}}
	first, err = c.call("PUT", path, valid, key)
	if err == nil && first.Status != http.StatusOK {
		err = fmt.Errorf("the first push with the key answered %d", first.Status)
	}
	if err == nil {
		var again answer
		again, err = c.call("PUT", path, valid, key)
		if err == nil && (again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true") {
			err = fmt.Errorf("the same request with the key: %d, Idempotent-Replayed %q; want the first answer replayed", again.Status, again.Header.Get("Idempotent-Replayed"))
		}
	}
	if err == nil {
		v4 := mustJSON(hall{Version: 4, Name: "长青厅", Category: "large", Capacity: 300, PriceFen: 310000, Status: "available"})
		a, err = c.call("PUT", path, v4, key)
	}
	r.expect("idempotency_key_reused", a, err, 422, "idempotency_key_reused", nil)

	rateLimited(c, r, path)
}

// rateLimited sends reads 8 at a time until the hub answers 429, checks
// Retry-After, waits that long and reads once more.
func rateLimited(c *client, r *run, path string) {
	var limited *answer
	var firstErr error
	for round := 0; round < 60 && limited == nil && firstErr == nil; round++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := c.request("GET", path, nil)
				sign(req, nil, c.keyID, c.secret, time.Now(), newNonce())
				a, err := c.send(req, nil)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = err
				case err == nil && a.Status == http.StatusTooManyRequests && limited == nil:
					limited = &a
				case err == nil && a.Status != http.StatusOK && a.Status != http.StatusTooManyRequests && firstErr == nil:
					firstErr = fmt.Errorf("a read answered %d %s", a.Status, a.Problem.Code)
				}
			}()
		}
		wg.Wait()
	}
	if limited == nil {
		if firstErr == nil {
			firstErr = errors.New("480 reads were never rate limited")
		}
		r.expect("rate_limited", answer{}, firstErr, 429, "rate_limited", nil)
		return
	}
	r.expect("rate_limited", *limited, nil, 429, "rate_limited", func(a answer) error {
		s := a.Header.Get("Retry-After")
		if n, err := strconv.Atoi(s); err != nil || n < 1 {
			return fmt.Errorf("Retry-After %q: want whole seconds", s)
		}
		wait := retryAfter(a)
		fmt.Printf("     (waiting Retry-After %s)\n", wait)
		time.Sleep(wait)
		after, err := c.call("GET", path, nil, nil)
		if err != nil {
			return err
		}
		if after.Status != http.StatusOK {
			return fmt.Errorf("after Retry-After the read answered %d", after.Status)
		}
		return nil
	})
}
