package funeral

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/problem"
)

func writeJSON(w http.ResponseWriter, status int, etag string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if etag != "" {
		h.Set("ETag", etag)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// recordID checks the record id of the path, names the call's target for
// the audit record, and, for a write (verb "push" or "withdraw"), checks
// that the caller's role may write records of kind k.
func recordID(k kindSpec, c *call, verb string) (string, error) {
	id := KindInstitution
	if k.Name != KindInstitution {
		id = c.params["id"]
		if !recordIDRE.MatchString(id) {
			p := problem.ValidationFailed(problem.FieldError{Field: "id (path)", Reason: "want 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or digit"})
			return "", &p
		}
	}
	c.kind, c.ref = k.Name, id
	if verb != "" && !k.allows(c.partner.Role) {
		p := problem.Forbidden(fmt.Sprintf("a %s may not %s %s records", c.partner.Role, verb, k.Name))
		return "", &p
	}
	return id, nil
}

func (a *API) getRecord(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		id, err := recordID(k, c, "")
		if err != nil {
			return err
		}
		rec, ok, err := a.store.Get(r.Context(), c.partner.ID, k.Name, id)
		if err != nil {
			return err
		}
		if !ok || rec.Deleted {
			return notFound(k.Name, id)
		}
		body, _ := json.Marshal(rec)
		writeJSON(w, http.StatusOK, rec.ETag(), body)
		return nil
	}
}

func (a *API) putRecord(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		id, err := recordID(k, c, "push")
		if err != nil {
			return err
		}
		idem, ifMatch, err := conditionHeaders(r)
		if err != nil {
			return err
		}
		body, perr := a.readBody(w, r)
		if perr != nil {
			return perr
		}
		v, perr := decodeJSON(body)
		if perr != nil {
			return perr
		}
		fes, err := a.spec.Validate(k.Schema, v)
		if err != nil {
			return err
		}
		if len(fes) > 0 {
			p := problem.ValidationFailed(toFieldErrors(fes)...)
			return &p
		}
		obj := v.(map[string]any) // the schema requires an object
		normalizeNumbers(obj)
		canonical, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		prep, ferrs := prepare(k, c.partner.Role, obj, canonical)
		if len(ferrs) > 0 {
			out := make([]problem.FieldError, len(ferrs))
			for i, f := range ferrs {
				out[i] = problem.FieldError{Field: f.field, Reason: f.reason}
			}
			p := problem.ValidationFailed(out...)
			return &p
		}
		res, err := a.store.Apply(r.Context(), Write{
			PartnerID: c.partner.ID, Kind: k.Name, ID: id, Version: prep.version, Hash: prep.hash, Data: prep.data,
			Status: prep.status, RefAt: prep.refAt, IfMatch: ifMatch, IdemKey: idem, ReqHash: r.URL.Path + ":" + prep.hash,
		})
		if err != nil {
			return err
		}
		if res.Replayed != nil {
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, res.Replayed.Status, res.Replayed.ETag, res.Replayed.Body)
			return nil
		}
		out, _ := json.Marshal(res.Record)
		writeJSON(w, http.StatusOK, res.Record.ETag(), out)
		return nil
	}
}

func (a *API) deleteRecord(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		id, err := recordID(k, c, "withdraw")
		if err != nil {
			return err
		}
		_, ifMatch, err := conditionHeaders(r)
		if err != nil {
			return err
		}
		if _, err := a.store.Apply(r.Context(), Write{PartnerID: c.partner.ID, Kind: k.Name, ID: id, Delete: true, IfMatch: ifMatch}); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// conditionHeaders reads and checks Idempotency-Key and If-Match. A header
// sent empty is an error for Idempotency-Key (it has a pattern) and means
// no condition for If-Match.
func conditionHeaders(r *http.Request) (idem, ifMatch string, err error) {
	var fes []problem.FieldError
	if vs, sent := r.Header["Idempotency-Key"]; sent {
		idem = vs[0]
		if len(vs) > 1 || !idemKeyRE.MatchString(idem) {
			fes = append(fes, problem.FieldError{Field: "Idempotency-Key (header)", Reason: "want one value of 8 to 64 characters of [A-Za-z0-9._:-]"})
		}
	}
	ifMatch = r.Header.Get("If-Match")
	if len(ifMatch) > 64 {
		fes = append(fes, problem.FieldError{Field: "If-Match (header)", Reason: "longer than 64 characters"})
	}
	if len(fes) > 0 {
		p := problem.ValidationFailed(fes...)
		return "", "", &p
	}
	return idem, ifMatch, nil
}

// pageSize reads page_size (default 50).
func pageSize(r *http.Request) (int, *problem.FieldError) {
	q := r.URL.Query()
	if !q.Has("page_size") {
		return 50, nil
	}
	n, err := strconv.Atoi(q.Get("page_size"))
	if err != nil || n < 1 || n > 200 {
		return 0, &problem.FieldError{Field: "page_size (query)", Reason: "want an integer from 1 to 200"}
	}
	return n, nil
}

// page reads page_size and a record page_token (a change sequence).
func page(r *http.Request) (int, int64, error) {
	var fes []problem.FieldError
	size, fe := pageSize(r)
	if fe != nil {
		fes = append(fes, *fe)
	}
	var after int64
	if t := r.URL.Query().Get("page_token"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		n, err2 := strconv.ParseInt(string(b), 10, 64)
		if err != nil || err2 != nil || n < 0 {
			fes = append(fes, problem.FieldError{Field: "page_token (query)", Reason: "not a token from a previous page"})
		}
		after = n
	}
	if len(fes) > 0 {
		p := problem.ValidationFailed(fes...)
		return 0, 0, &p
	}
	return size, after, nil
}

func pageToken(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

type pageJSON struct {
	Items         []json.RawMessage `json:"items"`
	NextPageToken string            `json:"next_page_token,omitempty"`
}

func (a *API) listRecords(k kindSpec) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		c.kind = k.Name
		size, after, err := page(r)
		if err != nil {
			return err
		}
		var since time.Time
		if q := r.URL.Query(); q.Has("updated_since") {
			t, err := time.Parse(time.RFC3339, q.Get("updated_since"))
			if err != nil {
				p := problem.ValidationFailed(problem.FieldError{Field: "updated_since (query)", Reason: "want an RFC 3339 time with an offset"})
				return &p
			}
			since = t
		}
		recs, next, err := a.store.List(r.Context(), Query{PartnerID: c.partner.ID, Kind: k.Name, AfterSeq: after, Since: since, Limit: size})
		if err != nil {
			return err
		}
		out := pageJSON{Items: make([]json.RawMessage, 0, len(recs))}
		for _, rec := range recs {
			b, _ := json.Marshal(rec)
			out.Items = append(out.Items, b)
		}
		if next > 0 {
			out.NextPageToken = pageToken(next)
		}
		b, _ := json.Marshal(out)
		writeJSON(w, http.StatusOK, "", b)
		return nil
	}
}

func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if p := problem.RequireContentType(r, "application/json"); p != nil {
		return nil, p
	}
	if r.ContentLength > a.maxBody {
		p := problem.BodyTooLarge(a.maxBody)
		return nil, &p
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p := problem.BodyTooLarge(a.maxBody)
			return nil, &p
		}
		p := problem.BadJSON("the body could not be read")
		return nil, &p
	}
	return b, nil
}

// decodeJSON decodes one JSON value with json.Number numbers.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		p := problem.BadJSON("the body is not valid JSON")
		if errors.Is(err, io.EOF) {
			p = problem.BadJSON("the body is empty")
		}
		return nil, &p
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		p := problem.BadJSON("trailing data after the JSON value")
		return nil, &p
	}
	// encoding/json turns invalid UTF-8 (GBK bytes sent as if UTF-8) into
	// U+FFFD silently: refuse it, naming the field, before anything is stored.
	if !utf8.Valid(b) {
		p := problem.ValidationFailed(problem.FieldError{Field: invalidUTF8Field(b),
			Reason: "not valid UTF-8 (text must be sent as UTF-8, not GBK/GB18030)"})
		return nil, &p
	}
	return v, nil
}

// invalidUTF8Field returns the JSON pointer of the first string (value or
// member name) of the valid JSON document b holding invalid UTF-8 ("" for
// the document itself).
func invalidUTF8Field(b []byte) string {
	bad := 0
	for bad < len(b) {
		r, n := utf8.DecodeRune(b[bad:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		bad += n
	}
	type level struct {
		array bool
		index int
		key   string
		// wantKey: in an object, the next string token is a member name.
		wantKey bool
	}
	var stack []level
	pointer := func(extra ...string) string {
		var sb strings.Builder
		for _, l := range stack {
			sb.WriteByte('/')
			if l.array {
				sb.WriteString(strconv.Itoa(l.index))
			} else {
				sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(l.key))
			}
		}
		for _, e := range extra {
			sb.WriteString("/" + e)
		}
		return sb.String()
	}
	// afterValue moves the enclosing level on after a complete value.
	afterValue := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].wantKey = true
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return pointer()
		}
		end := int(dec.InputOffset())
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, level{wantKey: true})
			case '[':
				stack = append(stack, level{array: true})
			case '}', ']':
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case string:
			if n := len(stack); n > 0 && !stack[n-1].array && stack[n-1].wantKey {
				stack[n-1].key, stack[n-1].wantKey = t, false
				if end > bad {
					return pointer() // the member name itself
				}
				continue
			}
			if end > bad {
				return pointer()
			}
			afterValue()
		default:
			afterValue()
		}
	}
}

func toFieldErrors(fes []apispec.FieldError) []problem.FieldError {
	out := make([]problem.FieldError, len(fes))
	for i, f := range fes {
		out[i] = problem.FieldError{Field: f.Field, Reason: f.Reason}
	}
	return out
}
