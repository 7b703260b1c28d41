package ministry

import (
	"errors"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/household"
)

const done = `{"ticket":"MCA32","status":"done","answered_at":"2026-11-30T08:00:00Z","result":{"persons":[{"id":"320102198001010012","items":[
{"type":"evidence","kind":"wage","source":"省人社厅","amount":"6000.00","period":"2026-10"},{"type":"asset","kind":"deposit","source":"省内银行","amount":"1.5"}]}]}}`

func TestParseStatus(t *testing.T) {
	a, err := ParseStatus([]byte(`{"ticket":"T","status":"processing"}`))
	if err != nil || !a.Pending || a.PartnerRef != "T" {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseStatus([]byte(done))
	if err != nil || a.Pending || len(a.Facts) != 2 || a.Facts[1].AmountFen != 150 {
		t.Fatalf("%+v %v", a, err)
	}
	for _, bad := range []string{`{"status":"done"}`, `{"status":"lost"}`, `{"status":"done","answered_at":"2026-11-30T08:00:00Z","result":{"persons":[{"id":"1","items":[{"type":"x","amount":"1"}]}]}}`} {
		if _, err := ParseStatus([]byte(bad)); !errors.Is(err, household.ErrBadAnswer) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := ParseInbound([]byte(`{"requests":[{"ref":"R","from_province":"320","persons":[{"id":"1"}],"received_at":"2026-11-30T08:00:00Z"}]}`)); !errors.Is(err, household.ErrBadAnswer) {
		t.Fatal(err)
	}
	c := &Client{}
	if s := c.Scopes([]household.Member{{IDNumber: "310101"}, {IDNumber: "320102"}, {IDNumber: "320103"}, {IDNumber: "440101"}}); len(s) != 2 || s[0] != "32" || s[1] != "44" {
		t.Fatal(s)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(done))
	f.Add([]byte(`{"ticket":"T","status":"accepted"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseStatus(data)
		if err != nil && !errors.Is(err, household.ErrBadAnswer) {
			t.Fatal(err)
		}
		if err == nil && a.Pending && len(a.Facts) > 0 {
			t.Fatal("pending with facts")
		}
	})
}

func FuzzParseInbound(f *testing.F) {
	f.Add([]byte(`{"requests":[{"ref":"R","from_province":"32","auth_no":"A","persons":[{"id":"1","name":"n"}],"received_at":"2026-11-30T08:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ins, err := ParseInbound(data)
		if err != nil {
			if !errors.Is(err, household.ErrBadAnswer) {
				t.Fatal(err)
			}
			return
		}
		for _, in := range ins {
			if in.Ref == "" || len(in.Persons) == 0 {
				t.Fatal("accepted an incomplete request")
			}
		}
	})
}
