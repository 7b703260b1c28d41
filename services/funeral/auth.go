package funeral

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security/sign"
)

type partnerKey struct{}

// WithPartner returns ctx carrying an authenticated partner id.
func WithPartner(ctx context.Context, partnerID string) context.Context {
	return context.WithValue(ctx, partnerKey{}, partnerID)
}

// PartnerFromContext returns the partner id put by SignatureAuth or WithPartner.
func PartnerFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(partnerKey{}).(string)
	return id, ok && id != ""
}

// SignatureAuth is the API's built-in partner check, used until the hub
// hands in the security package's middleware: HMAC-SM3 signature
// (security/sign), timestamp window, nonce replay, key → partner, IP
// allowlist.
type SignatureAuth struct {
	reg      *Registry
	verifier *sign.Verifier
	now      func() time.Time
	window   time.Duration
	mu       sync.Mutex
	nonces   map[string]time.Time
	lastGC   time.Time
}

// NewSignatureAuth returns the built-in check. secret returns a key id's
// secret or an error wrapping sign.ErrUnknownKey.
func NewSignatureAuth(reg *Registry, secret func(context.Context, string) ([]byte, error), window time.Duration, maxBody int64, now func() time.Time) *SignatureAuth {
	if now == nil {
		now = time.Now
	}
	a := &SignatureAuth{reg: reg, now: now, window: window, nonces: map[string]time.Time{}}
	a.verifier = &sign.Verifier{
		Secret: func(ctx context.Context, keyID string) ([]byte, error) {
			if _, ok := reg.ByKey(keyID); !ok {
				return nil, sign.ErrUnknownKey
			}
			return secret(ctx, keyID)
		},
		Window: window, MaxBody: maxBody, Now: now,
	}
	return a
}

// Middleware authenticates every request before next; refused calls are
// answered with a problem and reported to onRefuse.
func (a *SignatureAuth) Middleware(next http.Handler, onRefuse func(r *http.Request, partnerID string, p problem.Problem)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		partnerID, p := a.check(r)
		if p != nil {
			if onRefuse != nil {
				onRefuse(r, partnerID, *p)
			}
			problem.Write(w, r, *p)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPartner(r.Context(), partnerID)))
	})
}

func (a *SignatureAuth) check(r *http.Request) (string, *problem.Problem) {
	res, err := a.verifier.Verify(r)
	if err != nil {
		var p problem.Problem
		switch {
		case errors.Is(err, sign.ErrMissing):
			p = problem.SignatureMissing(err.Error())
		case errors.Is(err, sign.ErrExpired):
			p = problem.TimestampExpired(err.Error())
		case errors.Is(err, sign.ErrUnknownKey):
			p = problem.UnknownKey()
		case errors.Is(err, sign.ErrBodyTooLarge):
			p = problem.BodyTooLarge(a.verifier.MaxBody)
		case errors.Is(err, sign.ErrMalformed), errors.Is(err, sign.ErrDigest), errors.Is(err, sign.ErrInvalid):
			p = problem.SignatureInvalid(err.Error())
		default:
			p = problem.Internal(err)
		}
		id := ""
		if pt, ok := a.reg.ByKey(res.KeyID); ok {
			id = pt.ID
		}
		return id, &p
	}
	pt, _ := a.reg.ByKey(res.KeyID)
	if pt.Disabled {
		p := problem.UnknownKey()
		return pt.ID, &p
	}
	if !pt.AllowsIP(remoteAddr(r)) {
		p := problem.IPNotAllowed()
		return pt.ID, &p
	}
	if !a.fresh(res.KeyID + "/" + res.Nonce) {
		p := problem.NonceReused()
		return pt.ID, &p
	}
	return pt.ID, nil
}

// fresh records a nonce and reports whether it was unused within the window.
func (a *SignatureAuth) fresh(key string) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.lastGC) > a.window {
		for k, t := range a.nonces {
			if now.Sub(t) > 2*a.window {
				delete(a.nonces, k)
			}
		}
		a.lastGC = now
	}
	if _, seen := a.nonces[key]; seen {
		return false
	}
	a.nonces[key] = now
	return true
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, _ := netip.ParseAddr(host)
	return addr
}
