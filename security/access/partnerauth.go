package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store"
)

// Options are PartnerAuth's dependencies.
type Options struct {
	// Config is security.partner_api.
	Config security.PartnerAPIConfig
	// Keys provides partner/<key-id> secrets.
	Keys keys.Provider
	// Nonces remembers nonces (NewSQLNonces in the hub, NewMemoryNonces in tests).
	Nonces NonceStore
	// Audit receives a record for every call; required.
	Audit audit.Appender
	// Unauthenticated, when set, receives instead of Audit the records of
	// calls refused before the caller proved who it is (an aggregating
	// audit.Throttle: a flood is counted, not written one record each).
	Unauthenticated audit.Appender
	// Logger gets refusals and audit failures; discarded when nil.
	Logger *slog.Logger
	// Registerer gets the metrics; none are registered when nil.
	Registerer prometheus.Registerer
	// Clock tells the time; the wall clock when nil.
	Clock clock.Clock
}

// PartnerAuth authenticates and polices partner API calls.
type PartnerAuth struct {
	cfg      security.PartnerAPIConfig
	keys     keys.Provider
	nonces   NonceStore
	audit    audit.Appender
	unauth   audit.Appender
	log      *slog.Logger
	clock    clock.Clock
	verifier *sign.Verifier
	// rules are the partners the guard admits; SetPartners swaps them.
	rules   atomic.Pointer[rules]
	proxies []netip.Prefix
	secrets sync.Map // key id -> []byte (from the key provider)
	ipLim   *limiters
	ptLim   *limiters
	calls   *prometheus.CounterVec
}

type partner struct {
	security.PartnerAccess
	nets []netip.Prefix
}

// rules is one immutable set of admitted partners.
type rules struct {
	byID, byKey, bySubj map[string]*partner
	// held are secrets handed in with the rules (the partner state store's
	// sealed keys, opened); other key ids come from the key provider.
	held map[string][]byte
}

func newRules(all []security.PartnerAccess, held map[string][]byte) *rules {
	rs := &rules{byID: map[string]*partner{}, byKey: map[string]*partner{}, bySubj: map[string]*partner{}, held: held}
	for _, pa := range all {
		p := &partner{PartnerAccess: pa}
		for _, s := range pa.AllowCIDRs {
			p.nets = append(p.nets, netip.MustParsePrefix(s).Masked())
		}
		rs.byID[pa.ID] = p
		for _, k := range pa.KeyIDs {
			rs.byKey[k] = p
		}
		for _, s := range pa.MTLSSubjects {
			rs.bySubj[s] = p
		}
	}
	return rs
}

// New checks the configuration and returns the guard.
func New(o Options) (*PartnerAuth, error) {
	if o.Keys == nil || o.Nonces == nil || o.Audit == nil {
		return nil, errors.New("access: Keys, Nonces and Audit are required")
	}
	if err := (security.Config{KeyProvider: "env", PartnerAPI: o.Config, Console: security.DefaultConfig().Console, Audit: security.DefaultConfig().Audit}).Validate(); err != nil {
		return nil, err
	}
	a := &PartnerAuth{
		cfg: o.Config, keys: o.Keys, nonces: o.Nonces, audit: o.Audit, unauth: o.Unauthenticated, log: o.Logger, clock: o.Clock,
		ipLim: newLimiters(), ptLim: newLimiters(),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.clock == nil {
		a.clock = clock.Real{}
	}
	for _, s := range o.Config.TrustedProxies {
		a.proxies = append(a.proxies, netip.MustParsePrefix(s)) // validated above
	}
	a.rules.Store(newRules(o.Config.Partners, nil))
	a.verifier = &sign.Verifier{Secret: a.secret, Window: o.Config.SignatureWindow, MaxBody: o.Config.MaxBodyBytes, Now: a.clock.Now}
	a.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mzhub_partner_api_requests_total",
		Help: "Partner API calls by partner (or unknown) and outcome (success, failure, denied) and problem code.",
	}, []string{"partner", "outcome", "code"})
	if o.Registerer != nil {
		if err := o.Registerer.Register(a.calls); err != nil {
			return nil, fmt.Errorf("access: register metrics: %w", err)
		}
	}
	return a, nil
}

// secret returns a configured key id's secret from the key provider (cached).
func (a *PartnerAuth) secret(ctx context.Context, keyID string) ([]byte, error) {
	rs := a.rules.Load()
	p, ok := rs.byKey[keyID]
	if !ok || p.Disabled {
		return nil, sign.ErrUnknownKey
	}
	if s, ok := rs.held[keyID]; ok {
		return s, nil
	}
	if v, ok := a.secrets.Load(keyID); ok {
		return v.([]byte), nil
	}
	s, err := a.keys.Get(ctx, keys.PartnerPrefix+keyID)
	if errors.Is(err, keys.ErrNotFound) {
		a.log.Error("partner key id configured but its secret is missing", "partner", p.ID, "key_id", keyID)
		return nil, sign.ErrUnknownKey
	}
	if err != nil {
		return nil, fmt.Errorf("access: secret of %s: %w", keyID, err)
	}
	a.secrets.Store(keyID, s)
	return s, nil
}

// Reload forgets cached secrets so the next request reads them again (after
// a partner key rotation).
func (a *PartnerAuth) Reload() { a.secrets.Clear() }

// SetPartners replaces the partners the guard admits: the configured ones
// (security.partner_api.partners) plus extra, with held the secrets of
// extra's key ids that do not come from the key provider. Requests already
// past the guard finish; the next request is judged by the new rules, so a
// disabled partner or a revoked key is refused from then on. The rules are
// checked as New checks them.
func (a *PartnerAuth) SetPartners(extra []security.PartnerAccess, held map[string][]byte) error {
	cfg := a.cfg
	cfg.Partners = append(append([]security.PartnerAccess(nil), a.cfg.Partners...), extra...)
	if err := (security.Config{KeyProvider: "env", PartnerAPI: cfg, Console: security.DefaultConfig().Console, Audit: security.DefaultConfig().Audit}).Validate(); err != nil {
		return err
	}
	a.rules.Store(newRules(cfg.Partners, held))
	a.secrets.Clear()
	return nil
}

// Middleware guards next. Every request ends in exactly one audit record.
func (a *PartnerAuth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := a.clock.Now()
		reqID := requestID(r)
		r.Header.Set(problem.RequestIDHeader, reqID)
		w.Header().Set(problem.RequestIDHeader, reqID)
		ip := a.sourceIP(r)
		path, _ := target(r)
		call := callInfo{ip: ip.String(), object: r.Method + " " + path, reqID: reqID}

		p, prob := a.check(r, ip, path, now, &call)
		if prob != nil {
			a.refuse(w, r, call, *prob)
			return
		}
		id := security.Partner{ID: p.ID, KeyID: call.keyID, Method: call.method, SourceIP: call.ip, RequestID: reqID}
		if call.method == security.AuthMTLS && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		}
		sw := problem.NewRecorder(w)
		// The partner waits for what the handler writes: urgent at the
		// state store's write gate (store.Urgent).
		next.ServeHTTP(sw, r.WithContext(store.Urgent(security.WithPartner(r.Context(), id))))
		outcome := audit.OutcomeSuccess
		if sw.Status() >= 400 {
			outcome = audit.OutcomeFailure
		}
		a.calls.WithLabelValues(p.ID, outcome, "").Inc()
		a.record(r.Context(), call, "partner:"+p.ID, outcome, fmt.Sprintf("status=%d auth=%s", sw.Status(), call.method))
	})
}

type callInfo struct {
	ip, object, reqID string
	keyID, method     string
	// partner is the partner the request claims (by key id or certificate);
	// authenticated says whether it proved it.
	partner       string
	authenticated bool
}

// check runs the guards in order and returns the partner or a problem.
func (a *PartnerAuth) check(r *http.Request, ip netip.Addr, path string, now time.Time, call *callInfo) (*partner, *problem.Problem) {
	if ok, wait := a.ipLim.allow("ip:"+call.ip, a.cfg.IPRate, a.cfg.IPBurst, now); !ok {
		p := problem.RateLimited(retrySeconds(wait))
		return nil, &p
	}
	rs := a.rules.Load()
	var p *partner
	if r.Header.Get(sign.HeaderSignature) == "" && r.Header.Get(sign.HeaderKeyID) == "" && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		p = rs.bySubj[cn]
		if p == nil || p.Disabled {
			pr := problem.UnknownKey()
			pr.Detail = "the client certificate is not registered for a partner"
			return nil, &pr
		}
		call.method, call.partner, call.authenticated = security.AuthMTLS, p.ID, true
	} else {
		res, err := a.verifier.Verify(r)
		call.keyID, call.method = res.KeyID, security.AuthHMAC
		if bp := rs.byKey[res.KeyID]; bp != nil {
			call.partner = bp.ID
		}
		if err != nil {
			pr := signProblem(err, a.cfg.MaxBodyBytes)
			return nil, &pr
		}
		p = rs.byKey[res.KeyID]
		if p == nil || p.Disabled {
			// The rules changed between the signature check and here.
			pr := problem.UnknownKey()
			return nil, &pr
		}
		call.authenticated = true
		fresh, err := a.nonces.Use(r.Context(), res.KeyID, res.Nonce, now, now.Add(2*a.cfg.SignatureWindow))
		if err != nil {
			pr := storeProblem(err)
			return nil, &pr
		}
		if !fresh {
			pr := problem.NonceReused()
			return nil, &pr
		}
	}
	if !slices.ContainsFunc(p.nets, func(n netip.Prefix) bool { return n.Contains(ip) }) {
		pr := problem.IPNotAllowed()
		return nil, &pr
	}
	if len(p.AllowPaths) > 0 && !slices.ContainsFunc(p.AllowPaths, func(pre string) bool { return strings.HasPrefix(path, pre) }) {
		pr := problem.Forbidden("the partner is not registered for this endpoint")
		return nil, &pr
	}
	if len(p.MatchParams) > 0 {
		q := r.URL.Query()
		for _, name := range sortedKeys(p.MatchParams) {
			vs, ok := q[name]
			if !ok || len(vs) == 0 {
				pr := problem.ParamNotAllowed(name)
				return nil, &pr
			}
			for _, v := range vs {
				if !slices.Contains(p.MatchParams[name], v) {
					pr := problem.ParamNotAllowed(name)
					return nil, &pr
				}
			}
		}
	}
	rt, burst := a.cfg.PartnerRate, a.cfg.PartnerBurst
	if p.Rate > 0 {
		rt = p.Rate
	}
	if p.Burst > 0 {
		burst = p.Burst
	}
	if ok, wait := a.ptLim.allow("partner:"+p.ID, rt, burst, now); !ok {
		pr := problem.RateLimited(retrySeconds(wait))
		return nil, &pr
	}
	return p, nil
}

// SetReplicas shares the per-IP and per-partner rate limits between n
// replicas of the hub (n < 1 counts as 1): with a load balancer spreading
// calls evenly, the cluster as a whole then allows the configured rates.
// The hub updates it from the live replica count (store/lease).
func (a *PartnerAuth) SetReplicas(n int) {
	now := a.clock.Now()
	a.ipLim.setReplicas(n, now)
	a.ptLim.setReplicas(n, now)
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func retrySeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// signProblem maps a verification error to its problem answer.
func signProblem(err error, limit int64) problem.Problem {
	detail := strings.TrimPrefix(err.Error(), "sign: ")
	switch {
	case errors.Is(err, sign.ErrMissing):
		return problem.SignatureMissing(detail)
	case errors.Is(err, sign.ErrUnknownKey):
		return problem.UnknownKey()
	case errors.Is(err, sign.ErrExpired):
		return problem.TimestampExpired(detail)
	case errors.Is(err, sign.ErrBodyTooLarge):
		return problem.BodyTooLarge(limit)
	case errors.Is(err, sign.ErrMalformed), errors.Is(err, sign.ErrDigest), errors.Is(err, sign.ErrInvalid):
		return problem.SignatureInvalid(detail)
	}
	return problem.Internal(err)
}

func (a *PartnerAuth) refuse(w http.ResponseWriter, r *http.Request, call callInfo, p problem.Problem) {
	// The actor is a partner only once it proved it; before that it is the
	// key id it claimed or its address.
	actor, label := "ip:"+call.ip, "unknown"
	if call.partner != "" {
		label = call.partner
	}
	switch {
	case call.authenticated:
		actor = "partner:" + call.partner
	case call.keyID != "":
		actor = "key:" + call.keyID
	}
	outcome := audit.OutcomeDenied
	switch {
	case p.Status == http.StatusServiceUnavailable:
		// Back pressure: the partner is told to retry after Retry-After;
		// nothing is wrong with the hub that an operator must fix.
		outcome = audit.OutcomeFailure
		a.log.Warn("partner API call held back: hub busy", "actor", actor, "endpoint", mask.Text(call.object), "request_id", call.reqID, "err", p.Internal)
	case p.Status >= 500:
		outcome = audit.OutcomeFailure
		a.log.Error("partner API guard failed", "request_id", call.reqID, "err", p.Internal)
	default:
		a.log.Warn("partner API call refused", "actor", actor, "source_ip", call.ip, "endpoint", mask.Text(call.object), "code", p.Code, "request_id", call.reqID)
	}
	a.calls.WithLabelValues(label, outcome, p.Code).Inc()
	problem.Write(w, r, p)
	to := a.audit
	if !call.authenticated && a.unauth != nil {
		to = a.unauth
	}
	detail := fmt.Sprintf("code=%s status=%d", p.Code, p.Status)
	if p.Status != http.StatusServiceUnavailable {
		a.recordTo(r.Context(), to, call, actor, outcome, detail)
		return
	}
	// A busy answer's own record goes to the store that just said it is
	// busy: try, but its loss is the same back pressure (counted above in
	// mzhub_partner_api_requests_total, code unavailable), not an audit
	// failure to page someone for.
	if err := a.appendTo(failFast(r.Context()), to, call, actor, outcome, detail); err != nil {
		a.log.Warn("audit record of a busy answer not written", "request_id", call.reqID, "err", err)
	}
}

func (a *PartnerAuth) record(ctx context.Context, call callInfo, actor, outcome, detail string) {
	a.recordTo(ctx, a.audit, call, actor, outcome, detail)
}

func (a *PartnerAuth) recordTo(ctx context.Context, to audit.Appender, call callInfo, actor, outcome, detail string) {
	if err := a.appendTo(ctx, to, call, actor, outcome, detail); err != nil {
		a.log.Error("audit append failed", "request_id", call.reqID, "err", err)
	}
}

func (a *PartnerAuth) appendTo(ctx context.Context, to audit.Appender, call callInfo, actor, outcome, detail string) error {
	// The answer is already on its way: the record must not be lost because
	// the client went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := to.Append(ctx, audit.Record{
		Actor: actor, SourceIP: call.ip, Action: "partner_api.call", Object: call.object,
		Outcome: outcome, RequestID: call.reqID, Detail: detail,
	})
	return err
}

// sourceIP is the peer address, or for a trusted proxy the last address in
// X-Forwarded-For that is not itself a trusted proxy.
func (a *PartnerAuth) sourceIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	ip = ip.Unmap()
	if !a.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip
		}
		h = h.Unmap()
		if !a.trusted(h) {
			return h
		}
		ip = h
	}
	return ip
}

func (a *PartnerAuth) trusted(ip netip.Addr) bool {
	return slices.ContainsFunc(a.proxies, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// target is the decoded path and raw query the client sent (before any
// http.StripPrefix).
func target(r *http.Request) (string, string) {
	if r.RequestURI != "" && r.RequestURI != "*" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			return u.Path, u.RawQuery
		}
	}
	return r.URL.Path, r.URL.RawQuery
}

// requestID keeps a well-formed caller request id or makes one.
func requestID(r *http.Request) string {
	id := r.Header.Get(problem.RequestIDHeader)
	if len(id) >= 8 && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return id
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
