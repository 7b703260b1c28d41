package apispec

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// walkExamples calls fn for every media type object with a schema $ref and
// an example in the document.
func walkExamples(doc map[string]any, fn func(where, schema string, example any)) {
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch m := v.(type) {
		case map[string]any:
			if sch, ok := m["schema"].(map[string]any); ok {
				if ref, ok := sch["$ref"].(string); ok {
					if ex, ok := m["example"]; ok && strings.HasPrefix(ref, "#/components/schemas/") {
						fn(path, strings.TrimPrefix(ref, "#/components/schemas/"), ex)
					}
				}
			}
			for k, c := range m {
				walk(path+"/"+k, c)
			}
		case []any:
			for _, c := range m {
				walk(path+"/[]", c)
			}
		}
	}
	walk("", doc)
}

func TestExamplesValidate(t *testing.T) {
	for _, load := range []func() (*Spec, error){Partner, Booking} {
		s, err := load()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		walkExamples(s.doc, func(where, schema string, ex any) {
			n++
			// Round-trip so numbers are json.Number as the server sees them.
			b, _ := json.Marshal(ex)
			fes, err := s.ValidateJSON(schema, b)
			if err != nil {
				t.Errorf("%s %s: %v", s.url, where, err)
			}
			for _, fe := range fes {
				t.Errorf("%s %s: example breaks %s at %s: %s", s.url, where, schema, fe.Field, fe.Reason)
			}
		})
		if n < 5 {
			t.Errorf("%s: only %d examples found", s.url, n)
		}
	}
}

func TestEveryOperationHasExampleAndProblem(t *testing.T) {
	for _, load := range []func() (*Spec, error){Partner, Booking} {
		s, err := load()
		if err != nil {
			t.Fatal(err)
		}
		paths := s.doc["paths"].(map[string]any)
		for _, op := range s.Operations() {
			if op.ID == "" {
				t.Errorf("%s %s: no operationId", op.Method, op.Path)
			}
			if r, ok := op.Responses["default"]; !ok || r.MediaType != "application/problem+json" {
				t.Errorf("%s: no default problem+json answer", op.ID)
			}
			raw := paths[op.Path].(map[string]any)[strings.ToLower(op.Method)]
			b, _ := json.Marshal(raw)
			if op.Method != "DELETE" && !strings.Contains(string(b), `"example"`) {
				t.Errorf("%s: no example", op.ID)
			}
		}
	}
}

func TestValidateReportsFields(t *testing.T) {
	s, err := Partner()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, schema, body string
		wantField          string
	}{
		{"negative price", "Hall", `{"version":1,"name":"a","category":"large","capacity":10,"price_fen":-1,"status":"available"}`, "/price_fen"},
		{"bad category", "Hall", `{"version":1,"name":"a","category":"huge","capacity":10,"price_fen":1,"status":"available"}`, "/category"},
		{"unknown field", "Vehicle", `{"version":1,"plate_number":"沪A12345","type":"hearse","seats":4,"price_fen":1,"status":"available","colour":"black"}`, "/"},
		{"time without zone", "Deceased", `{"version":1,"name":"a","gender":"male","body_status":"received","status_at":"2026-11-27T10:00:00"}`, "/status_at"},
		{"missing version", "Burial", `{"deceased_name":"a","burial_date":"2026-11-20","burial_type":"tree","plot_code":"x"}`, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fes, err := s.ValidateJSON(tt.schema, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, fe := range fes {
				if fe.Field == tt.wantField {
					found = true
				}
			}
			if !found {
				t.Fatalf("want an error at %s, got %+v", tt.wantField, fes)
			}
		})
	}
	if fes, _ := s.ValidateJSON("Hall", []byte(`{"version":1,"name":"a","category":"large","capacity":10,"price_fen":1,"status":"available"}`)); len(fes) != 0 {
		t.Fatalf("valid hall refused: %+v", fes)
	}
}

func TestFind(t *testing.T) {
	s, err := Partner()
	if err != nil {
		t.Fatal(err)
	}
	op, params, ok := s.Find("PUT", "/partner/v1/halls/H-1")
	if !ok || op.ID != "putHall" || params["id"] != "H-1" {
		t.Fatalf("got %v %v %v", op, params, ok)
	}
	if _, _, ok := s.Find("PATCH", "/partner/v1/halls/H-1"); ok {
		t.Fatal("PATCH matched")
	}
}

func TestHandler(t *testing.T) {
	h := http.StripPrefix("/docs/api", Handler())
	for path, want := range map[string]int{"/docs/api/partner.yaml": 200, "/docs/api/booking.yaml": 200, "/docs/api/secret.yaml": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("%s: %d", path, rec.Code)
		}
		if want == 200 && !strings.HasPrefix(rec.Body.String(), "openapi: 3.1.0") && !strings.Contains(rec.Body.String(), "\nopenapi: 3.1.0") {
			t.Errorf("%s: not the document", path)
		}
	}
}

// TestFieldErrorsMaskValues: a value that fails a pattern is quoted by the
// validator; the reason sent back (and logged) must not carry it whole.
func TestFieldErrorsMaskValues(t *testing.T) {
	s, err := Partner()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"31010119900307123x", "3101011990030712345"} {
		fes, err := s.Validate("IDNumber", bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(fes) == 0 {
			t.Fatalf("%s… passed the IDNumber pattern", bad[:3])
		}
		for _, fe := range fes {
			if strings.Contains(fe.Reason, bad[:14]) {
				t.Errorf("reason repeats the value: %q", fe.Reason)
			}
		}
	}
}
