package bankaccounts

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/problem"
)

// RequestBody is one request of POST /v1/requests.
type RequestBody struct {
	ExtID    string `json:"ext_id"`
	Bank     string `json:"bank"`
	Op       string `json:"op"`
	PersonID string `json:"person_id"`
	Name     string `json:"name"`
	Account  string `json:"account,omitempty"`
	Division string `json:"division,omitempty"`
}

// Failure is a refused request as the API and the console show it (masked).
type Failure struct {
	Ref       string `json:"ref"`
	Bank      string `json:"bank"`
	Op        string `json:"op"`
	IDMasked  string `json:"person"`
	Account   string `json:"account"`
	Outcome   string `json:"outcome"`
	Code      string `json:"code"`
	Reason    string `json:"reason"`
	UpdatedMS int64  `json:"updated_ms"`
}

// Failures lists the latest refused requests, newest first.
func (s *Service) Failures(ctx context.Context, limit int) ([]Failure, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT ref, bank, op, id_masked, account_masked, outcome, code, reason, updated_ms
		FROM acct_requests WHERE status = 'failed' ORDER BY updated_ms DESC, ref LIMIT ?`), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Failure
	for rows.Next() {
		var f Failure
		if err := rows.Scan(&f.Ref, &f.Bank, &f.Op, &f.IDMasked, &f.Account, &f.Outcome, &f.Code, &f.Reason, &f.UpdatedMS); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// APIHandler serves the bureau systems' account API (mounted under
// /internal/accounts behind the partner guard):
//
//	POST /v1/requests  a JSON array of RequestBody; stored once each by
//	                   ext_id (201 with the count of new ones, 422 naming
//	                   each bad request, nothing stored then)
//	GET  /v1/failures  the latest refused requests, masked (limit=N)
func (s *Service) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/requests", func(w http.ResponseWriter, r *http.Request) {
		var body []RequestBody
		if p := problem.DecodeJSON(r, &body, 4<<20); p != nil {
			problem.Write(w, r, *p)
			return
		}
		rs := make([]Request, len(body))
		for i, b := range body {
			rs[i] = Request{ExtID: b.ExtID, Bank: b.Bank, Op: bank.AccountOp(b.Op), PersonID: b.PersonID, Name: b.Name, Account: b.Account, Division: b.Division}
		}
		n, err := s.Submit(r.Context(), rs)
		if errors.Is(err, ErrBadRequest) {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "requests", Reason: err.Error()}))
			return
		}
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]int{"stored": n, "received": len(rs)})
	})
	mux.HandleFunc("GET /v1/failures", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		fs, err := s.Failures(r.Context(), limit)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"failures": fs})
	})
	return mux
}
