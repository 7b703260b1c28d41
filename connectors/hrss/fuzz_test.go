package hrss

import (
	"errors"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/household"
)

const sample = `<QueryPersonsResponse xmlns="urn:sh-bdc:exchange:hrss:v1"><Ref>HRSS1</Ref><AsOf>2026-11-30</AsOf>
<Person><Zjhm>310104195001010012</Zjhm><Employment><Dwmc>上海浦江机械有限公司</Dwmc><Jfjs>8500.00</Jfjs><Ny>202610</Ny></Employment>
<Pension><Je>3200.5</Je><Ny>202610</Ny></Pension><NursingFee><Je>1200</Je><Ny>202610</Ny></NursingFee></Person></QueryPersonsResponse>`

func TestParseAnswer(t *testing.T) {
	a, err := ParseAnswer([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if a.PartnerRef != "HRSS1" || len(a.Covered) != 1 || len(a.Facts) != 3 || a.Facts[0].AmountFen != 850000 || a.Facts[0].Category != household.Evidence ||
		a.Facts[1].Kind != "pension" || a.Facts[1].AmountFen != 320050 || a.Facts[2].Kind != "nursing_fee" || a.Facts[2].Period != "2026-10" {
		t.Fatalf("%+v", a)
	}
	for _, bad := range []string{"<x", `<QueryPersonsResponse xmlns="urn:sh-bdc:exchange:hrss:v1"><AsOf>30/11/2026</AsOf></QueryPersonsResponse>`,
		`<QueryPersonsResponse xmlns="urn:sh-bdc:exchange:hrss:v1"><AsOf>2026-11-30</AsOf><Person><Zjhm>1</Zjhm><Pension><Je>1e3</Je><Ny>202610</Ny></Pension></Person></QueryPersonsResponse>`} {
		if _, err := ParseAnswer([]byte(bad)); !errors.Is(err, household.ErrBadAnswer) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`<QueryPersonsResponse xmlns="urn:sh-bdc:exchange:hrss:v1"><AsOf>2026-11-30</AsOf></QueryPersonsResponse>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAnswer(data)
		if err != nil {
			if !errors.Is(err, household.ErrBadAnswer) {
				t.Fatalf("error not ErrBadAnswer: %v", err)
			}
			return
		}
		for _, fc := range a.Facts {
			if fc.IDNumber == "" || fc.Period == "" {
				t.Fatalf("fact without person or month: %+v", fc)
			}
		}
	})
}
