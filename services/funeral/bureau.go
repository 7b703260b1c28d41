package funeral

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/shanghai-mca/mzhub/problem"
)

// BureauHandler serves the bureau's business systems (mount behind the
// hub's internal authentication, e.g. at /internal/funeral/):
//
//	GET /internal/funeral/v1/{kind}?partner_id=&page_size=&page_token=  records of every partner
//	GET /internal/funeral/v1/changes?after=SEQ&limit=N                  the change log
//	PUT /internal/funeral/v1/intermediaries/{id}                        publish an intermediary
//	PUT /internal/funeral/v1/intermediaries/{id}/staff/{staff}          publish a staff member
//	PUT /internal/funeral/v1/credit-list/{id}                           publish a red/black list entry
//
// Published items are validated against the partner API's schemas and
// phone numbers of staff are masked before they are stored.
func (a *API) BureauHandler(prefix string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/v1/changes", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		ch, err := a.store.ChangesSince(r.Context(), after, limit)
		if err != nil {
			problem.WriteError(w, r, err)
			return
		}
		b, _ := json.Marshal(map[string]any{"items": ch})
		writeJSON(w, http.StatusOK, "", b)
	})
	mux.HandleFunc("GET "+prefix+"/v1/{kind}", func(w http.ResponseWriter, r *http.Request) {
		kind := r.PathValue("kind")
		known := false
		for _, k := range Kinds() {
			known = known || k == kind
		}
		if !known {
			problem.Write(w, r, problem.NotFound("no kind "+kind))
			return
		}
		size, after, err := page(r)
		if err != nil {
			problem.WriteError(w, r, err)
			return
		}
		recs, next, err := a.store.List(r.Context(), Query{PartnerID: r.URL.Query().Get("partner_id"), Kind: kind, AfterSeq: after, Limit: size, IncludeDeleted: true})
		if err != nil {
			problem.WriteError(w, r, err)
			return
		}
		out := pageJSON{Items: []json.RawMessage{}}
		for _, rec := range recs {
			b, _ := json.Marshal(rec)
			out.Items = append(out.Items, b)
		}
		if next > 0 {
			out.NextPageToken = pageToken(next)
		}
		b, _ := json.Marshal(out)
		writeJSON(w, http.StatusOK, "", b)
	})
	put := func(kind, schema string, parent func(r *http.Request) string, id func(r *http.Request) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, err := a.readBody(w, r)
			if err != nil {
				problem.WriteError(w, r, err)
				return
			}
			v, err := decodeJSON(body)
			if err != nil {
				problem.WriteError(w, r, err)
				return
			}
			if m, ok := v.(map[string]any); ok {
				m["id"] = id(r)
				if ph, ok := m["phone"].(string); ok {
					m["phone"] = maskPhone(ph)
				}
			}
			fes, err := a.spec.Validate(schema, v)
			if err != nil {
				problem.WriteError(w, r, err)
				return
			}
			if len(fes) > 0 {
				problem.Write(w, r, problem.ValidationFailed(toFieldErrors(fes)...))
				return
			}
			data, _ := json.Marshal(v)
			if err := a.store.PutBureau(r.Context(), BureauItem{Kind: kind, ID: id(r), ParentID: parent(r), Data: data}); err != nil {
				problem.WriteError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, "", data)
		}
	}
	none := func(*http.Request) string { return "" }
	mux.HandleFunc("PUT "+prefix+"/v1/intermediaries/{id}", put(BureauIntermediary, "Intermediary", none, func(r *http.Request) string { return r.PathValue("id") }))
	mux.HandleFunc("PUT "+prefix+"/v1/intermediaries/{id}/staff/{staff}", put(BureauStaff, "Staff",
		func(r *http.Request) string { return r.PathValue("id") }, func(r *http.Request) string { return r.PathValue("staff") }))
	mux.HandleFunc("PUT "+prefix+"/v1/credit-list/{id}", put(BureauCredit, "CreditEntry", none, func(r *http.Request) string { return r.PathValue("id") }))
	return problem.Recover(a.log, mux)
}
