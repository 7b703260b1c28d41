package funeral

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// FuzzPutBody feeds arbitrary bodies to every kind's PUT: the answer is
// never a 5xx and always within the spec.
func FuzzPutBody(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"name":"长青厅","category":"large","capacity":300,"price_fen":280000,"status":"available"}`,
		`{"version":1e400}`, `{"version":-0.0}`, `[]`, `null`, `"x"`, `{"id_number":"310101194501010024"}`,
		`{"version":1,"slots":[{"start_at":"x"}]}`, `{"contact":{"phone":1}}`, "\xff\xfe", `{"version":1}{}`,
	} {
		f.Add("halls", s)
		f.Add("deceased", s)
	}
	db := storetest.Open(f)
	api, err := NewAPI(context.Background(), DefaultConfig(), Deps{Store: db, Partners: testPartners(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = api.Close(context.Background()) })
	api.cfg.RatePerSecond = 0
	f.Fuzz(func(t *testing.T, plural, body string) {
		path := "/partner/v1/" + plural + "/F-1"
		op, _, ok := api.spec.Find("PUT", path)
		if !ok {
			return
		}
		r := httptest.NewRequest("PUT", path, bytes.NewReader([]byte(body)))
		r.Header.Set("Content-Type", "application/json")
		r = r.WithContext(security.WithPartner(r.Context(), security.Partner{ID: "funeral.fh01"}))
		w := httptest.NewRecorder()
		api.serve(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body)
		}
		if breaches := api.spec.CheckResponse(op, w.Code, w.Header().Get("Content-Type"), w.Body.Bytes()); len(breaches) > 0 {
			t.Fatalf("%s %q: %v", path, body, breaches)
		}
	})
}
