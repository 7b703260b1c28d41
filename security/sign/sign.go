package sign

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"
)

// Header names of a signed request.
const (
	HeaderKeyID      = "X-MZ-Key-Id"
	HeaderTimestamp  = "X-MZ-Timestamp"
	HeaderNonce      = "X-MZ-Nonce"
	HeaderContentSM3 = "X-MZ-Content-SM3"
	HeaderSignature  = "X-MZ-Signature"
)

// Algorithm is the first line of the canonical string.
const Algorithm = "MZ-HMAC-SM3"

// EmptySM3 is the SM3 digest of an empty body, in hex.
const EmptySM3 = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"

// Sentinel errors of verification. Match them with errors.Is.
var (
	// ErrMissing: one or more signing headers are absent.
	ErrMissing = errors.New("sign: signature headers missing")
	// ErrMalformed: a header is present but not in its format.
	ErrMalformed = errors.New("sign: malformed signature header")
	// ErrUnknownKey: the key id is not known to the verifier.
	ErrUnknownKey = errors.New("sign: unknown key id")
	// ErrExpired: the timestamp is outside the accepted window.
	ErrExpired = errors.New("sign: timestamp outside window")
	// ErrDigest: the body does not match X-MZ-Content-SM3.
	ErrDigest = errors.New("sign: body digest mismatch")
	// ErrInvalid: the signature does not verify.
	ErrInvalid = errors.New("sign: signature invalid")
	// ErrBodyTooLarge: the body is over the verifier's limit.
	ErrBodyTooLarge = errors.New("sign: body too large")
)

// ContentSM3 returns the lower-case hex SM3 digest of body.
func ContentSM3(body []byte) string {
	d := sm3.Sum(body)
	return hex.EncodeToString(d[:])
}

// MAC returns the lower-case hex HMAC-SM3 of msg under secret.
func MAC(secret []byte, msg string) string {
	m := hmac.New(sm3.New, secret)
	_, _ = io.WriteString(m, msg)
	return hex.EncodeToString(m.Sum(nil))
}

// escape percent-encodes every byte outside RFC 3986's unreserved set
// (A-Z a-z 0-9 - . _ ~) as %XX with upper-case hex; '/' is kept when
// keepSlash is set.
func escape(s string, keepSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', keepSlash && c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// CanonicalPath returns the canonical form of a decoded URL path: each byte
// outside the unreserved set except '/' percent-encoded, "/" when empty.
func CanonicalPath(path string) string {
	if path == "" {
		return "/"
	}
	return escape(path, true)
}

// CanonicalQuery returns the canonical form of a raw query string: every
// parameter decoded ('+' is a space), re-encoded with escape, sorted by name
// then value, joined as name=value with '&'. A parameter without '=' has an
// empty value.
func CanonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	type kv struct{ k, v string }
	var ps []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return "", fmt.Errorf("%w: query parameter name: %v", ErrMalformed, err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return "", fmt.Errorf("%w: query parameter %s: %v", ErrMalformed, dk, err)
		}
		ps = append(ps, kv{escape(dk, false), escape(dv, false)})
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].k != ps[j].k {
			return ps[i].k < ps[j].k
		}
		return ps[i].v < ps[j].v
	})
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&"), nil
}

// Fields are the signed parts of a request.
type Fields struct {
	// Method is the HTTP method in upper case.
	Method string
	// Path is the decoded URL path as the client requested it (with the
	// /partner/ prefix).
	Path string
	// RawQuery is the query string as sent, without '?'.
	RawQuery string
	// KeyID is the partner's key id.
	KeyID string
	// Timestamp is unix seconds in decimal.
	Timestamp string
	// Nonce is the request's one-time random string.
	Nonce string
	// ContentSM3 is the lower-case hex SM3 of the body.
	ContentSM3 string
}

// CanonicalString returns the string that is MACed: eight lines joined by
// '\n' with no trailing newline (see docs/signing.md).
func CanonicalString(f Fields) (string, error) {
	q, err := CanonicalQuery(f.RawQuery)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		Algorithm,
		strings.ToUpper(f.Method),
		CanonicalPath(f.Path),
		q,
		f.KeyID,
		f.Timestamp,
		f.Nonce,
		strings.ToLower(f.ContentSM3),
	}, "\n"), nil
}

// NewNonce returns 32 random hex characters.
func NewNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// Sign signs req in place with the current time and a fresh nonce: it sets
// the five X-MZ-* headers. It reads the body to digest it and puts it back
// (and sets GetBody), so req can be sent as is.
func Sign(req *http.Request, keyID string, secret []byte) error {
	return SignAt(req, keyID, secret, time.Now(), NewNonce())
}

// SignAt is Sign with a given time and nonce (tests, worked examples).
func SignAt(req *http.Request, keyID string, secret []byte, t time.Time, nonce string) error {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return fmt.Errorf("sign: read body: %w", err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	f := Fields{
		Method:     req.Method,
		Path:       req.URL.Path,
		RawQuery:   req.URL.RawQuery,
		KeyID:      keyID,
		Timestamp:  strconv.FormatInt(t.Unix(), 10),
		Nonce:      nonce,
		ContentSM3: ContentSM3(body),
	}
	cs, err := CanonicalString(f)
	if err != nil {
		return err
	}
	h := req.Header
	h.Set(HeaderKeyID, keyID)
	h.Set(HeaderTimestamp, f.Timestamp)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderContentSM3, f.ContentSM3)
	h.Set(HeaderSignature, MAC(secret, cs))
	return nil
}

// Transport is an http.RoundTripper that signs every request with one key.
type Transport struct {
	// KeyID and Secret are the partner's credentials.
	KeyID  string
	Secret []byte
	// Base sends the signed request; http.DefaultTransport when nil.
	Base http.RoundTripper
}

// RoundTrip signs a clone of req and sends it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("sign: get body: %w", err)
		}
		r.Body = b
	}
	if err := Sign(r, t.KeyID, t.Secret); err != nil {
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// Verifier checks signed requests.
type Verifier struct {
	// Secret returns the secret of a key id, or an error wrapping
	// ErrUnknownKey (any other error is an internal failure).
	Secret func(ctx context.Context, keyID string) ([]byte, error)
	// Window is how far the timestamp may be from now, either way.
	Window time.Duration
	// MaxBody is the largest body read (bytes).
	MaxBody int64
	// Now tells the time; time.Now when nil.
	Now func() time.Time
}

// Result is what a verified request proved.
type Result struct {
	// KeyID is the verified key id.
	KeyID string
	// Nonce must now be checked for reuse by the caller.
	Nonce string
	// Timestamp is the signed time.
	Timestamp time.Time
}

// Verify checks r's signature. It reads the body (at most MaxBody bytes) and
// puts it back so the handler can read it. The error wraps one of the
// sentinels; on ErrUnknownKey and later the Result carries the key id.
func (v *Verifier) Verify(r *http.Request) (Result, error) {
	h := r.Header
	res := Result{KeyID: h.Get(HeaderKeyID), Nonce: h.Get(HeaderNonce)}
	var missing []string
	for _, name := range []string{HeaderKeyID, HeaderTimestamp, HeaderNonce, HeaderContentSM3, HeaderSignature} {
		if h.Get(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("%w: %s", ErrMissing, strings.Join(missing, ", "))
	}
	if !validToken(res.KeyID, 1, 64) {
		return res, fmt.Errorf("%w: %s", ErrMalformed, HeaderKeyID)
	}
	if !validToken(res.Nonce, 16, 64) {
		return res, fmt.Errorf("%w: %s must be 16 to 64 characters of [A-Za-z0-9._-]", ErrMalformed, HeaderNonce)
	}
	tsText := h.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || len(tsText) > 12 {
		return res, fmt.Errorf("%w: %s must be unix seconds", ErrMalformed, HeaderTimestamp)
	}
	res.Timestamp = time.Unix(ts, 0)
	sigHex := h.Get(HeaderSignature)
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sm3.Size {
		return res, fmt.Errorf("%w: %s must be 64 hex characters", ErrMalformed, HeaderSignature)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if d := now().Sub(res.Timestamp); d > v.Window || d < -v.Window {
		return res, fmt.Errorf("%w: %s is %s from the hub's clock (window %s)", ErrExpired, HeaderTimestamp, d.Round(time.Second), v.Window)
	}
	secret, err := v.Secret(r.Context(), res.KeyID)
	if err != nil {
		return res, err
	}
	body, err := readBody(r, v.MaxBody)
	if err != nil {
		return res, err
	}
	digest := ContentSM3(body)
	if !strings.EqualFold(digest, h.Get(HeaderContentSM3)) {
		return res, fmt.Errorf("%w: %s does not match the body", ErrDigest, HeaderContentSM3)
	}
	path, rawQuery := requestTarget(r)
	cs, err := CanonicalString(Fields{
		Method: r.Method, Path: path, RawQuery: rawQuery, KeyID: res.KeyID,
		Timestamp: tsText, Nonce: res.Nonce, ContentSM3: digest,
	})
	if err != nil {
		return res, err
	}
	want, _ := hex.DecodeString(MAC(secret, cs))
	if !hmac.Equal(want, sig) {
		return res, ErrInvalid
	}
	return res, nil
}

// requestTarget returns the decoded path and raw query the client sent. It
// prefers RequestURI, which http.StripPrefix leaves alone, so the signature
// covers the full path however the hub mounts the handler.
func requestTarget(r *http.Request) (string, string) {
	if r.RequestURI != "" && r.RequestURI != "*" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			return u.Path, u.RawQuery
		}
	}
	return r.URL.Path, r.URL.RawQuery
}

func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if limit <= 0 {
		limit = 1 << 20
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrBodyTooLarge, r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", ErrMalformed, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return b, nil
}

func validToken(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
