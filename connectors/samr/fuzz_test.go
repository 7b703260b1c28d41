package samr

import (
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
)

const sample = `{"ref":"SAMR-1","as_of":"2026-11-30","results":[{"id":"310104195001010012","companies":[
{"name":"上海晨光贸易有限公司","uscc":"913101040001234567","reg_capital":"1000000.00","share_ratio":"0.35","status":"存续","abnormal":true}]},
{"id":"310104198001010034","companies":[]}]}`

func TestParsers(t *testing.T) {
	a, err := ParseAnswer([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Covered) != 2 || len(a.Facts) != 2 || a.Facts[0].AmountFen != 35_000_000 || a.Facts[1].Kind != "abnormal_list" {
		t.Fatalf("%+v", a)
	}
	for _, bad := range []string{`{"as_of":"2026-11-30","results":[{"id":"1","companies":[{"reg_capital":"10","share_ratio":"1/2"}]}]}`,
		`{"as_of":"2026-11-30","results":[{"id":"1","companies":[{"reg_capital":"10","share_ratio":"1.5"}]}]}`, `{"as_of":"x"}`, `[`} {
		if _, err := ParseAnswer([]byte(bad)); !errors.Is(err, household.ErrBadAnswer) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	ls, err := ParseLicences([]byte(`{"licences":[{"licence_no":"JY1","holder":"h","valid_to":"2026-12-31"}]}`))
	if err != nil || len(ls) != 1 || !ls[0].Valid(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)) || ls[0].Valid(time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Fatalf("%+v %v", ls, err)
	}
	if _, err := ParseAbnormal([]byte(`{"entries":[{"uscc":"short","listed_on":"2026-01-01"}]}`)); !errors.Is(err, household.ErrBadAnswer) {
		t.Fatal(err)
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAnswer(data)
		if err != nil {
			if !errors.Is(err, household.ErrBadAnswer) {
				t.Fatalf("%v", err)
			}
			return
		}
		for _, fc := range a.Facts {
			if fc.AmountFen < 0 {
				t.Fatalf("negative holding %+v", fc)
			}
		}
	})
}

func FuzzParseLists(f *testing.F) {
	f.Add([]byte(`{"licences":[{"licence_no":"JY1","valid_to":"2026-12-31"}],"entries":[{"uscc":"913101040001234567","listed_on":"2026-01-01"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseLicences(data); err != nil && !errors.Is(err, household.ErrBadAnswer) {
			t.Fatal(err)
		}
		if _, err := ParseAbnormal(data); err != nil && !errors.Is(err, household.ErrBadAnswer) {
			t.Fatal(err)
		}
	})
}
