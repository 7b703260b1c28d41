package verification

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/problem"
)

// SubmitBody is the body of a submission by the bureau's verification
// centre (POST /internal/verification/v1/households).
type SubmitBody struct {
	// Reference is the centre's case number (idempotent).
	Reference string `json:"reference"`
	// Household is the household number.
	Household string `json:"household"`
	// Division is the street's six-digit division code.
	Division string `json:"division,omitempty"`
	// Authorization is the household's authorisation reference.
	Authorization string `json:"authorization"`
	// Items to check; empty means all.
	Items []string `json:"items,omitempty"`
	// Members of the household.
	Members []household.Member `json:"members"`
}

// CodeUnknownRequest is the problem code of an unknown request id.
const CodeUnknownRequest = "verification_request_unknown"

// APIHandler serves the verification centre's API (mounted under
// /internal/verification behind the partner guard):
//
//	POST /v1/households        submit a household: 201 {id, status}, or 200 with the existing id for a known reference
//	GET  /v1/households/{id}   the result, partial or final
//
// Bad input gets problem+json: bad_json, unknown_field,
// unsupported_media_type, body_too_large, validation_failed (with the
// fields), verification_request_unknown.
func (s *Service) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/households", func(w http.ResponseWriter, r *http.Request) {
		var b SubmitBody
		if p := problem.DecodeJSON(r, &b, 256<<10); p != nil {
			problem.Write(w, r, *p)
			return
		}
		id, created, err := s.Submit(r.Context(), Request{Reference: b.Reference, Household: b.Household, Division: b.Division,
			Authorization: b.Authorization, Items: b.Items, Members: b.Members})
		var ie *InvalidError
		switch {
		case errors.As(err, &ie):
			var fe []problem.FieldError
			for _, f := range ie.Fields {
				fe = append(fe, problem.FieldError{Field: f.Field, Reason: f.Reason})
			}
			problem.Write(w, r, problem.ValidationFailed(fe...))
			return
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
			return
		}
		res, err := s.Result(r.Context(), id)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		w.Header().Set("Location", "/internal/verification/v1/households/"+id)
		writeJSON(w, status, map[string]any{"id": id, "status": res.Status, "created": created, "partners": len(res.Partners)})
	})
	mux.HandleFunc("GET /v1/households/{id}", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Result(r.Context(), r.PathValue("id"))
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, r, problem.Problem{Status: http.StatusNotFound, Code: CodeUnknownRequest, Title: "Unknown verification request",
				Detail: "no request has this id"})
			return
		}
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.Problem{Status: http.StatusNotFound, Code: problem.CodeNotFound, Title: "Not found"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
