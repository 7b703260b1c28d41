package funeral

import (
	"encoding/base64"
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

func (a *API) listBureau(kind string) opHandler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		var fes []problem.FieldError
		size, fe := pageSize(r)
		if fe != nil {
			fes = append(fes, *fe)
		}
		after := ""
		if t := r.URL.Query().Get("page_token"); t != "" {
			b, err := base64.RawURLEncoding.DecodeString(t)
			if err != nil {
				fes = append(fes, problem.FieldError{Field: "page_token (query)", Reason: "not a token from a previous page"})
			}
			after = string(b)
		}
		if len(fes) > 0 {
			p := problem.ValidationFailed(fes...)
			return &p
		}
		list := r.URL.Query().Get("list")
		if r.URL.Query().Has("list") && list != "red" && list != "black" {
			p := problem.ValidationFailed(problem.FieldError{Field: "list (query)", Reason: "want red or black"})
			return &p
		}
		items, err := a.store.ListBureau(r.Context(), kind, "", after, 1000)
		if err != nil {
			return err
		}
		out := pageJSON{Items: []json.RawMessage{}}
		for _, it := range items {
			if list != "" {
				var e struct {
					List string `json:"list"`
				}
				_ = json.Unmarshal(it.Data, &e)
				if e.List != list {
					continue
				}
			}
			if len(out.Items) == size {
				// More remain: the next page starts after the last one shown.
				out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(after))
				break
			}
			out.Items = append(out.Items, it.Data)
			after = it.ID
		}
		b, _ := json.Marshal(out)
		writeJSON(w, http.StatusOK, "", b)
		return nil
	}
}

func (a *API) getIntermediary(w http.ResponseWriter, r *http.Request, c *call) error {
	id := c.params["id"]
	it, ok, err := a.store.GetBureau(r.Context(), BureauIntermediary, id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(BureauIntermediary, id)
	}
	writeJSON(w, http.StatusOK, "", it.Data)
	return nil
}

func (a *API) listStaff(w http.ResponseWriter, r *http.Request, c *call) error {
	id := c.params["id"]
	if _, ok, err := a.store.GetBureau(r.Context(), BureauIntermediary, id); err != nil {
		return err
	} else if !ok {
		return notFound(BureauIntermediary, id)
	}
	items, err := a.store.ListBureau(r.Context(), BureauStaff, id, "", 1000)
	if err != nil {
		return err
	}
	out := pageJSON{Items: []json.RawMessage{}}
	for _, it := range items {
		out.Items = append(out.Items, it.Data)
	}
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, "", b)
	return nil
}
