package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// DefaultMaxBody is the body limit DecodeJSON uses when given 0.
const DefaultMaxBody = 1 << 20

// DecodeJSON reads r's body as one JSON value into v, strictly: the
// Content-Type must be application/json (any charset parameter must be
// utf-8), the body at most maxBytes (0 means DefaultMaxBody), no unknown
// fields, no trailing data. It returns nil or a *Problem ready for Write:
// unsupported_media_type, body_too_large, bad_json or unknown_field. A body
// already read by signature verification is read again from r.Body, so
// verifiers must restore it.
func DecodeJSON(r *http.Request, v any, maxBytes int64) *Problem {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	if p := RequireContentType(r, "application/json"); p != nil {
		return p
	}
	if r.ContentLength > maxBytes {
		p := BodyTooLarge(maxBytes)
		return &p
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p := BodyTooLarge(mbe.Limit)
			return &p
		}
		p := BadJSON("the body could not be read")
		return &p
	}
	if int64(len(body)) > maxBytes {
		p := BodyTooLarge(maxBytes)
		return &p
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		p := BadJSON("the body holds more than one JSON value")
		return &p
	}
	if _, err := dec.Token(); err != io.EOF {
		p := BadJSON("trailing data after the JSON value")
		return &p
	}
	return nil
}

func jsonProblem(err error) *Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		p := BadJSON("the body is empty")
		return &p
	case errors.Is(err, io.ErrUnexpectedEOF):
		p := BadJSON("the body ends in the middle of a JSON value")
		return &p
	case errors.As(err, &syn):
		p := BadJSON(fmt.Sprintf("syntax error at byte %d", syn.Offset))
		return &p
	case errors.As(err, &typ):
		p := BadJSON("wrong type for a field")
		field := typ.Field
		if field == "" {
			field = "(root)"
		}
		p.Errors = []FieldError{{Field: field, Reason: "want " + typ.Type.String()}}
		return &p
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for unknown fields; the message
		// format is fixed by its API documentation for DisallowUnknownFields.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		p := UnknownField(name)
		return &p
	}
	p := BadJSON("the body is not valid JSON")
	return &p
}

// RequireContentType checks that r's Content-Type is want (parameters
// allowed; a charset must be utf-8). It returns nil or an
// unsupported_media_type problem.
func RequireContentType(r *http.Request, want string) *Problem {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, want) {
		p := UnsupportedMediaType(want)
		return &p
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		p := UnsupportedMediaType(want + "; charset=utf-8")
		return &p
	}
	return nil
}

// Recover turns a panic in next into an internal problem answer (logged with
// the request id, never sent) so a bug never leaks a stack trace.
func Recover(logger *slog.Logger, next http.Handler) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.Error("handler panic", "path", mask.Text(r.URL.Path), "request_id", r.Header.Get(RequestIDHeader), "err", mask.Text(fmt.Sprint(v)))
				Write(w, r, Internal(fmt.Errorf("panic: %v", v)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
