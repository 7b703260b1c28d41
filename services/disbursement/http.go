package disbursement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/problem"
)

// InboxDir is where payment lists wait to be taken in: the allowance
// management system (or an operator) drops them there, and a run names one
// by its file name.
func (s *Service) InboxDir() string { return filepath.Join(s.cfg.Dir, "inbox") }

// InboxLists names the list files (*.csv) waiting in the inbox, sorted.
func (s *Service) InboxLists() ([]string, error) {
	ents, err := os.ReadDir(s.InboxDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("disbursement: inbox: %w", err)
	}
	names := []string{}
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".csv") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// InboxFile is the path of the inbox list named name: a .csv file name
// without a directory that is in the inbox, else ErrNotInInbox.
func (s *Service) InboxFile(name string) (string, error) {
	if name == "" || filepath.Base(name) != name || !strings.HasSuffix(name, ".csv") {
		return "", fmt.Errorf("%w: %q is not a .csv file name without a directory", ErrNotInInbox, name)
	}
	p := filepath.Join(s.InboxDir(), name)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s", ErrNotInInbox, name)
	}
	return p, nil
}

// Batches lists the newest batches first (at most limit).
func (s *Service) Batches(ctx context.Context, limit int) ([]Batch, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT kind, period FROM disb_batches ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("disbursement: list batches: %w", err)
	}
	var keys [][2]string
	for rows.Next() {
		var k, p string
		if err := rows.Scan(&k, &p); err != nil {
			rows.Close()
			return nil, err
		}
		keys = append(keys, [2]string{k, p})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Batch, 0, len(keys))
	for _, k := range keys {
		b, err := s.Batch(ctx, Kind(k[0]), k[1])
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, nil
}

// OpsHandler serves the console's cycle actions (mounted under
// /console/disbursement behind the console's login, role and CSRF guard):
//
//	GET  /batches                          the newest batches
//	GET  /batches/{kind}/{period}          stages, counts and issues of one
//	GET  /inbox                            list files waiting to be taken in
//	POST /batches/{kind}/{period}/run      {"list": "name.csv", "letter_total_fen": 123}: start or resume
//	POST /batches/{kind}/{period}/confirm  {"level": "district"|"city"}: confirm as the logged-in user
//
// user names the logged-in console user; canAct tells whether that user may
// act (operators; auditors only read). Every action is audited by the
// service under the user's name.
func (s *Service) OpsHandler(user func(*http.Request) string, canAct func(*http.Request) bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /batches", func(w http.ResponseWriter, r *http.Request) {
		bs, err := s.Batches(r.Context(), 50)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		out := make([]batchJSON, 0, len(bs))
		for _, b := range bs {
			out = append(out, toJSON(b))
		}
		writeJSON(w, map[string]any{"batches": out})
	})
	mux.HandleFunc("GET /batches/{kind}/{period}", func(w http.ResponseWriter, r *http.Request) {
		k, ok := kindOf(w, r)
		if !ok {
			return
		}
		st, err := s.Status(r.Context(), k, r.PathValue("period"))
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSON(w, map[string]any{"batch": toJSON(st.Batch), "stages": st.Stages, "counts": st.Counts,
			"issues": st.Issues, "quarantined": st.Quarantined})
	})
	mux.HandleFunc("GET /inbox", func(w http.ResponseWriter, r *http.Request) {
		names, err := s.InboxLists()
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		writeJSON(w, map[string]any{"dir": s.InboxDir(), "lists": names})
	})
	act := func(f func(w http.ResponseWriter, r *http.Request, k Kind, actor string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if canAct != nil && !canAct(r) {
				problem.Write(w, r, problem.Forbidden("only operators run and confirm cycles"))
				return
			}
			actor := ""
			if user != nil {
				actor = user(r)
			}
			if actor == "" {
				problem.Write(w, r, problem.Unauthenticated("a logged-in console user is required"))
				return
			}
			k, ok := kindOf(w, r)
			if !ok {
				return
			}
			f(w, r, k, actor)
		}
	}
	mux.HandleFunc("POST /batches/{kind}/{period}/run", act(func(w http.ResponseWriter, r *http.Request, k Kind, actor string) {
		var in struct {
			List        string `json:"list"`
			LetterTotal int64  `json:"letter_total_fen"`
		}
		if p := problem.DecodeJSON(r, &in, 4<<10); p != nil {
			problem.Write(w, r, *p)
			return
		}
		req := Request{Kind: k, Period: r.PathValue("period"), LetterTotal: in.LetterTotal, Actor: "console:" + actor}
		if in.LetterTotal < 0 {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "letter_total_fen", Reason: "must not be negative"}))
			return
		}
		if in.List != "" {
			p, err := s.InboxFile(in.List)
			if err != nil {
				problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "list", Reason: "a .csv file name in the inbox, without a directory"}))
				return
			}
			req.ListFile = p
		}
		b, err := s.Submit(r.Context(), req)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSONStatus(w, http.StatusAccepted, map[string]any{"batch": toJSON(*b)})
	}))
	mux.HandleFunc("POST /batches/{kind}/{period}/confirm", act(func(w http.ResponseWriter, r *http.Request, k Kind, actor string) {
		var in struct {
			Level string `json:"level"`
		}
		if p := problem.DecodeJSON(r, &in, 1<<10); p != nil {
			problem.Write(w, r, *p)
			return
		}
		if in.Level != "district" && in.Level != "city" {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "level", Reason: "district or city"}))
			return
		}
		if err := s.Confirm(r.Context(), k, r.PathValue("period"), in.Level, actor); err != nil {
			writeErr(w, r, err)
			return
		}
		b, err := s.Batch(r.Context(), k, r.PathValue("period"))
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSON(w, map[string]any{"batch": toJSON(*b)})
	}))
	return mux
}

// batchJSON is a batch as the console reads it.
type batchJSON struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Period      string `json:"period"`
	Stage       string `json:"stage"`
	Status      string `json:"status"`
	LetterTotal int64  `json:"letter_total_fen"`
	SystemTotal int64  `json:"system_total_fen"`
	Records     int64  `json:"records"`
	Valid       int64  `json:"valid"`
	Error       string `json:"error,omitempty"`
}

func toJSON(b Batch) batchJSON {
	return batchJSON{Name: b.Name, Kind: b.Kind, Period: b.Period, Stage: b.Stage, Status: b.Status,
		LetterTotal: b.LetterTotal, SystemTotal: b.SystemTotal, Records: b.Records, Valid: b.Valid, Error: b.Error}
}

func kindOf(w http.ResponseWriter, r *http.Request) (Kind, bool) {
	k := Kind(r.PathValue("kind"))
	if k != bank.Disbursement && k != bank.Deduction {
		problem.Write(w, r, problem.NotFound("kind is disbursement or deduction"))
		return "", false
	}
	return k, true
}

// writeErr answers a service error with its stable problem code.
func writeErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoBatch):
		problem.Write(w, r, problem.NotFound("no such batch"))
	case errors.Is(err, ErrConfirmOrder), errors.Is(err, ErrBatchDone), errors.Is(err, ErrListTaken):
		problem.Write(w, r, problem.Conflict(strings.TrimPrefix(err.Error(), "disbursement: ")))
	case errors.Is(err, ErrBadPeriod):
		problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "period", Reason: "YYYY-MM"}))
	default:
		problem.Write(w, r, problem.Internal(err))
	}
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
