package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// ContentType is the media type of a problem answer (RFC 9457 section 3).
const ContentType = "application/problem+json"

// TypeBase prefixes the code to form the problem type URI. The URI names the
// code's entry in the published interface spec; it need not resolve.
const TypeBase = "https://mzhub.mca.sh.gov.cn/problems/"

// FieldError is one problem with one input field.
type FieldError struct {
	// Field is the JSON path of the field ("records[3].id_number") or a header name.
	Field string `json:"field"`
	// Reason says what is wrong, without echoing the value.
	Reason string `json:"reason"`
}

// Problem is an RFC 9457 problem details object with the hub's extensions
// (code, request_id, errors).
type Problem struct {
	// Type is a URI naming the problem type; Write fills TypeBase+Code when empty.
	Type string `json:"type"`
	// Title is a short, stable summary of the problem type.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence for the caller. It must never hold a
	// whole ID, account or phone number, nor any internal error text.
	Detail string `json:"detail,omitempty"`
	// Instance identifies this occurrence; Write fills the request path when empty.
	Instance string `json:"instance,omitempty"`
	// Code is the stable machine-readable code (snake_case) callers match on.
	Code string `json:"code"`
	// RequestID correlates the answer with the hub's logs and audit records.
	RequestID string `json:"request_id,omitempty"`
	// Errors lists per-field problems (validation).
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header in seconds.
	RetryAfter int `json:"-"`
	// Internal is the underlying cause for the server's own log; it is never
	// written to the answer.
	Internal error `json:"-"`
}

// Error makes a Problem usable as an error; handlers may return one and let a
// single place write it.
func (p *Problem) Error() string {
	s := p.Code + ": " + p.Title
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// Unwrap returns the internal cause.
func (p *Problem) Unwrap() error { return p.Internal }

// RequestIDHeader is the header that carries the request id, set by the hub's
// request-id middleware or by the caller.
const RequestIDHeader = "X-Request-Id"

// Write sends p as application/problem+json. It fills Type, Instance and
// RequestID when they are empty and clamps a non-error Status to 500.
func Write(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Status < 400 || p.Status > 599 {
		p.Status = http.StatusInternalServerError
	}
	if p.Code == "" {
		p.Code = "error"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Type == "" {
		p.Type = TypeBase + p.Code
	}
	if r != nil {
		if p.Instance == "" && r.URL != nil {
			p.Instance = r.URL.Path
		}
		if p.RequestID == "" {
			p.RequestID = r.Header.Get(RequestIDHeader)
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		// Only a Problem with unmarshalable fields gets here, and it has none.
		body = []byte(`{"type":"` + TypeBase + `internal","title":"Internal error","status":500,"code":"internal"}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	noteCode(w, p.Code)
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}

// WriteError writes err as a problem: a *Problem found with errors.As is
// written as is, anything else becomes Internal (500) with no detail.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.As(err, &p) {
		Write(w, r, *p)
		return
	}
	Write(w, r, Internal(err))
}

// The stable codes. They are part of the published interface: never rename one.
const (
	CodeBadJSON              = "bad_json"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeSignatureMissing     = "signature_missing"
	CodeSignatureInvalid     = "signature_invalid"
	CodeTimestampExpired     = "timestamp_expired"
	CodeNonceReused          = "nonce_reused"
	CodeUnknownKey           = "unknown_key"
	CodeIPNotAllowed         = "ip_not_allowed"
	CodeParamNotAllowed      = "param_not_allowed"
	CodeRateLimited          = "rate_limited"
	CodeUnknownField         = "unknown_field"
	CodeValidationFailed     = "validation_failed"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodeUnauthenticated      = "unauthenticated"
	CodeForbidden            = "forbidden"
	CodeCSRF                 = "csrf_failed"
	CodeAccountLocked        = "account_locked"
	CodePasswordChange       = "password_change_required"
	CodePasswordPolicy       = "password_policy"
	CodeInternal             = "internal"
	CodeUnavailable          = "unavailable"
	CodeHeadersTooLarge      = "headers_too_large"
	CodeBadPath              = "bad_path"
)

func mk(status int, code, title, detail string) Problem {
	return Problem{Status: status, Code: code, Title: title, Detail: detail}
}

// BadJSON is a body that is not valid JSON or does not fit the schema's types.
func BadJSON(detail string) Problem {
	return mk(http.StatusBadRequest, CodeBadJSON, "Malformed JSON body", detail)
}

// BodyTooLarge is a body over the endpoint's limit (in bytes).
func BodyTooLarge(limit int64) Problem {
	return mk(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "Request body too large",
		"the body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
}

// UnsupportedMediaType is a Content-Type the endpoint does not accept.
func UnsupportedMediaType(want string) Problem {
	return mk(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "Unsupported media type",
		"send Content-Type: "+want)
}

// SignatureMissing is a partner request without the signing headers.
func SignatureMissing(detail string) Problem {
	return mk(http.StatusUnauthorized, CodeSignatureMissing, "Request signature missing", detail)
}

// SignatureInvalid is a signature that does not verify.
func SignatureInvalid(detail string) Problem {
	return mk(http.StatusUnauthorized, CodeSignatureInvalid, "Request signature invalid", detail)
}

// TimestampExpired is a signed request outside the accepted time window.
func TimestampExpired(detail string) Problem {
	return mk(http.StatusUnauthorized, CodeTimestampExpired, "Request timestamp outside the window", detail)
}

// NonceReused is a replayed request.
func NonceReused() Problem {
	return mk(http.StatusUnauthorized, CodeNonceReused, "Nonce already used", "each request needs a fresh nonce")
}

// UnknownKey is a key id the hub does not know (or that is disabled).
func UnknownKey() Problem {
	return mk(http.StatusUnauthorized, CodeUnknownKey, "Unknown key id", "the key id is not registered or is disabled")
}

// IPNotAllowed is a caller address outside the partner's allowlist.
func IPNotAllowed() Problem {
	return mk(http.StatusForbidden, CodeIPNotAllowed, "Source address not allowed", "the source address is not registered for this partner")
}

// ParamNotAllowed is a request whose parameters do not match what the
// partner is registered for.
func ParamNotAllowed(param string) Problem {
	return mk(http.StatusForbidden, CodeParamNotAllowed, "Request parameter not allowed",
		"parameter "+param+" does not match the partner's registration")
}

// RateLimited is a caller over its rate; retryAfter is in seconds.
func RateLimited(retryAfter int) Problem {
	p := mk(http.StatusTooManyRequests, CodeRateLimited, "Too many requests", "slow down and retry later")
	p.RetryAfter = retryAfter
	return p
}

// UnknownField is a JSON body with a field the schema does not define.
func UnknownField(field string) Problem {
	p := mk(http.StatusBadRequest, CodeUnknownField, "Unknown field", "the body has a field the interface does not define")
	p.Errors = []FieldError{{Field: field, Reason: "unknown field"}}
	return p
}

// ValidationFailed lists field problems.
func ValidationFailed(errs ...FieldError) Problem {
	p := mk(http.StatusUnprocessableEntity, CodeValidationFailed, "Validation failed", "")
	p.Errors = errs
	return p
}

// HeadersTooLarge is a request line plus headers over the listener's limit
// (http.max_header_bytes).
func HeadersTooLarge(limit int) Problem {
	return mk(http.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge, "Request headers too large",
		fmt.Sprintf("the request line and headers must not exceed %d bytes", limit))
}

// BadPath is a request path that is not in canonical form (dot segments
// such as "../", empty segments): refused, never redirected.
func BadPath() Problem {
	return mk(http.StatusBadRequest, CodeBadPath, "Path not canonical",
		`the path must not contain "." or ".." segments or empty segments`)
}

// NotFound is an unknown resource.
func NotFound(detail string) Problem {
	return mk(http.StatusNotFound, CodeNotFound, "Not found", detail)
}

// MethodNotAllowed is a method the endpoint does not serve; allow lists the
// methods it does (sent in the Allow header by the caller of Write if wanted).
func MethodNotAllowed(allow string) Problem {
	return mk(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed", "allowed: "+allow)
}

// Conflict is a request that clashes with the current state (duplicate key,
// version mismatch).
func Conflict(detail string) Problem {
	return mk(http.StatusConflict, CodeConflict, "Conflict", detail)
}

// Unauthenticated is a console request without a valid session.
func Unauthenticated(detail string) Problem {
	return mk(http.StatusUnauthorized, CodeUnauthenticated, "Authentication required", detail)
}

// Forbidden is an authenticated caller without the right role.
func Forbidden(detail string) Problem {
	return mk(http.StatusForbidden, CodeForbidden, "Forbidden", detail)
}

// CSRFFailed is a state-changing console request without a valid CSRF token.
func CSRFFailed() Problem {
	return mk(http.StatusForbidden, CodeCSRF, "CSRF check failed", "reload the page and try again")
}

// AccountLocked is a console login to an account locked after failed
// attempts; retryAfter is in seconds.
func AccountLocked(retryAfter int) Problem {
	p := mk(http.StatusForbidden, CodeAccountLocked, "Account locked", "too many failed logins; try again later or ask a security administrator")
	p.RetryAfter = retryAfter
	return p
}

// PasswordChangeRequired is a console request from a session whose password
// is one-time or expired: only changing the password is allowed.
func PasswordChangeRequired() Problem {
	return mk(http.StatusForbidden, CodePasswordChange, "Password change required", "change your password before going on")
}

// PasswordPolicy is a new password that breaks the policy; reasons go into Errors.
func PasswordPolicy(reasons ...string) Problem {
	p := mk(http.StatusUnprocessableEntity, CodePasswordPolicy, "Password does not meet the policy", "")
	for _, r := range reasons {
		p.Errors = append(p.Errors, FieldError{Field: "new_password", Reason: r})
	}
	return p
}

// Unavailable is a dependency that is down; retryAfter is in seconds.
func Unavailable(retryAfter int) Problem {
	p := mk(http.StatusServiceUnavailable, CodeUnavailable, "Service unavailable", "try again later")
	p.RetryAfter = retryAfter
	return p
}

// Internal is an unexpected failure. cause is kept for the server log only.
func Internal(cause error) Problem {
	p := mk(http.StatusInternalServerError, CodeInternal, "Internal error", "")
	p.Internal = cause
	return p
}
