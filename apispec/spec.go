package apispec

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/shanghai-mca/mzhub/security/mask"
)

//go:embed partner.yaml
var partnerYAML []byte

//go:embed booking.yaml
var bookingYAML []byte

// PartnerYAML returns the partner API document as published.
func PartnerYAML() []byte { return bytes.Clone(partnerYAML) }

// BookingYAML returns the funeral-home booking API document as published.
func BookingYAML() []byte { return bytes.Clone(bookingYAML) }

// Operation is one method on one path of a document.
type Operation struct {
	// ID is the operationId.
	ID string
	// Method is upper case (GET, PUT, ...).
	Method string
	// Path is the template, e.g. /partner/v1/halls/{id}.
	Path string
	// RequestSchema is the component schema of the JSON body ("" when none).
	RequestSchema string
	// Responses maps a status ("200", "default") to its media type and
	// component schema ("" when no body is documented).
	Responses map[string]Response

	segs []string
}

// Response is one documented answer.
type Response struct {
	// MediaType is application/json or application/problem+json ("" when none).
	MediaType string
	// Schema is the component schema name ("" when none).
	Schema string
}

// Spec is a parsed document with compiled schemas. It is safe for
// concurrent use.
type Spec struct {
	url     string
	doc     map[string]any
	ops     []*Operation
	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
	comp    *jsonschema.Compiler
}

// FieldError is one validation failure: a JSON pointer and a reason.
type FieldError struct {
	Field  string
	Reason string
}

// ErrUnknownSchema is returned for a schema name the document lacks.
var ErrUnknownSchema = errors.New("apispec: unknown schema")

// Partner parses the partner API document.
func Partner() (*Spec, error) { return Parse("mzhub:partner.yaml", partnerYAML) }

// Booking parses the funeral-home booking API document.
func Booking() (*Spec, error) { return Parse("mzhub:booking.yaml", bookingYAML) }

// Parse reads an OpenAPI 3.1 document in YAML.
func Parse(url string, src []byte) (*Spec, error) {
	var raw any
	if err := yaml.Unmarshal(src, &raw); err != nil {
		return nil, fmt.Errorf("apispec: parse %s: %w", url, err)
	}
	// Round-trip through JSON so numbers and maps have JSON shapes.
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", url, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", url, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("apispec: %s: not an object", url)
	}
	s := &Spec{url: url, doc: m, schemas: map[string]*jsonschema.Schema{}}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(url, m); err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", url, err)
	}
	s.comp = c
	if err := s.readOperations(); err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", url, err)
	}
	return s, nil
}

func (s *Spec) readOperations() error {
	paths, _ := s.doc["paths"].(map[string]any)
	for p, item := range paths {
		pi, _ := item.(map[string]any)
		for method, v := range pi {
			switch method {
			case "get", "put", "post", "delete", "patch":
			default:
				continue
			}
			o, _ := v.(map[string]any)
			op := &Operation{Method: strings.ToUpper(method), Path: p, Responses: map[string]Response{}, segs: strings.Split(strings.Trim(p, "/"), "/")}
			op.ID, _ = o["operationId"].(string)
			if rb, ok := o["requestBody"].(map[string]any); ok {
				op.RequestSchema = schemaOf(rb, "application/json")
			}
			rs, _ := o["responses"].(map[string]any)
			for code, rv := range rs {
				r := s.deref(rv)
				resp := Response{}
				if content, ok := r["content"].(map[string]any); ok {
					for mt := range content {
						resp.MediaType = mt
						resp.Schema = schemaOf(r, mt)
					}
				}
				op.Responses[code] = resp
			}
			s.ops = append(s.ops, op)
		}
	}
	sort.Slice(s.ops, func(i, j int) bool {
		if s.ops[i].Path != s.ops[j].Path {
			return s.ops[i].Path < s.ops[j].Path
		}
		return s.ops[i].Method < s.ops[j].Method
	})
	return nil
}

// deref follows a local $ref of a response object.
func (s *Spec) deref(v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = s.doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cm, _ := cur.(map[string]any)
		cur = cm[part]
	}
	out, _ := cur.(map[string]any)
	return out
}

func schemaOf(holder map[string]any, mt string) string {
	content, _ := holder["content"].(map[string]any)
	media, _ := content[mt].(map[string]any)
	sch, _ := media["schema"].(map[string]any)
	ref, _ := sch["$ref"].(string)
	return strings.TrimPrefix(ref, "#/components/schemas/")
}

// Operations lists the document's operations, sorted by path and method.
func (s *Spec) Operations() []*Operation { return s.ops }

// Find returns the operation matching method and a concrete path, with the
// path parameters.
func (s *Spec) Find(method, path string) (*Operation, map[string]string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, op := range s.ops {
		if op.Method != method || len(op.segs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, t := range op.segs {
			if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
				if segs[i] == "" {
					ok = false
					break
				}
				params[t[1:len(t)-1]] = segs[i]
				continue
			}
			if t != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return op, params, true
		}
	}
	return nil, nil, false
}

// Schema returns the compiled component schema called name.
func (s *Spec) Schema(name string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[name]; ok {
		return sch, nil
	}
	comps, _ := s.doc["components"].(map[string]any)
	all, _ := comps["schemas"].(map[string]any)
	if _, ok := all[name]; !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSchema, name)
	}
	sch, err := s.comp.Compile(s.url + "#/components/schemas/" + name)
	if err != nil {
		return nil, fmt.Errorf("apispec: compile %s: %w", name, err)
	}
	s.schemas[name] = sch
	return sch, nil
}

var printer = message.NewPrinter(language.English)

// Validate checks a decoded JSON value (from jsonschema.UnmarshalJSON or
// encoding/json with UseNumber) against the component schema name and
// returns every failing field with its reason; nil means valid.
func (s *Spec) Validate(name string, v any) ([]FieldError, error) {
	sch, err := s.Schema(name)
	if err != nil {
		return nil, err
	}
	err = sch.Validate(v)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	var out []FieldError
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			fe := FieldError{Field: pointer(e.InstanceLocation), Reason: mask.Text(e.ErrorKind.LocalizedString(printer))}
			if k := fe.Field + "\x00" + fe.Reason; !seen[k] {
				seen[k] = true
				out = append(out, fe)
			}
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out, nil
}

// ValidateJSON decodes body and validates it against the schema name.
func (s *Spec) ValidateJSON(name string, body []byte) ([]FieldError, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []FieldError{{Field: "", Reason: "not JSON: " + err.Error()}}, nil
	}
	return s.Validate(name, v)
}

func pointer(loc []string) string {
	if len(loc) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, p := range loc {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(p, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// CheckResponse verifies that an answer of op is documented: its status (or
// default) is listed, its media type matches, and its body validates
// against the documented schema. It returns a description of each breach.
func (s *Spec) CheckResponse(op *Operation, status int, contentType string, body []byte) []string {
	resp, ok := op.Responses[strconv.Itoa(status)]
	if !ok {
		resp, ok = op.Responses["default"]
		if !ok {
			return []string{fmt.Sprintf("%s %s: status %d is not documented", op.Method, op.Path, status)}
		}
	}
	if resp.MediaType == "" {
		if len(bytes.TrimSpace(body)) > 0 {
			return []string{fmt.Sprintf("%s %s: status %d must have no body", op.Method, op.Path, status)}
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != resp.MediaType {
		return []string{fmt.Sprintf("%s %s: status %d: content type %q, documented %q", op.Method, op.Path, status, mt, resp.MediaType)}
	}
	if resp.Schema == "" {
		return nil
	}
	fes, err := s.ValidateJSON(resp.Schema, body)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, fe := range fes {
		out = append(out, fmt.Sprintf("%s %s: status %d: %s %s: %s", op.Method, op.Path, status, resp.Schema, fe.Field, fe.Reason))
	}
	return out
}
