package hrss

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
)

const persons = `[{"zjhm":"310104195001010012","employment":[{"dwmc":"上海浦江机械有限公司","jfjs":"8500.00","ny":"202610"}],"pension":[{"je":"3200.5","ny":"202610"}],"nursing_fee":[{"je":"1200","ny":"202610"}]}]`

func row(key, asOf, persons string) []byte {
	b, _ := json.Marshal(map[string]any{"request_key": key, "ref": "HDJG1", "as_of": asOf, "persons": persons})
	return b
}

// TestFrontEndRow reads answer rows of the front-end answer table as the
// WebService's answers are read, and answers as the SOAP path does.
func TestFrontEndRow(t *testing.T) {
	for _, tc := range []struct {
		name, key, asOf, persons string
		noCall, bad              bool
	}{
		{name: "answer", key: "VR1:hrss", asOf: "2026-11-30", persons: persons},
		{name: "date column", key: "VR1:hrss", asOf: "2026-11-30T00:00:00Z", persons: persons},
		{name: "bad amount", key: "VR1:hrss", asOf: "2026-11-30", persons: strings.Replace(persons, "3200.5", "12.345", 1), bad: true},
		{name: "persons not JSON", key: "VR1:hrss", asOf: "2026-11-30", persons: "<Person/>", bad: true},
		{name: "bad month", key: "VR1:hrss", asOf: "2026-11-30", persons: strings.Replace(persons, "202610", "2026-13", 1), bad: true},
		{name: "no date", key: "VR1:hrss", persons: persons, bad: true},
		{name: "no key", asOf: "2026-11-30", persons: persons, noCall: true},
		{name: "another partner's call", key: "VR1:hpf", asOf: "2026-11-30", persons: persons, noCall: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := bus.Message{IdempotencyKey: "qzj.hrss_hdjg/7", Body: row(tc.key, tc.asOf, tc.persons)}
			ans, err := FrontEnd{}.Reply(context.Background(), msg)
			if tc.noCall {
				if !errors.Is(err, ErrNoCall) || !errors.Is(err, connectors.ErrPermanent) {
					t.Fatalf("Reply = %v, want a permanent ErrNoCall", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ans.Headers[household.HeaderCall] != tc.key || ans.Headers[household.HeaderPartner] != PartnerID {
				t.Fatalf("headers %v", ans.Headers)
			}
			var r household.Reply
			if err := json.Unmarshal(ans.Body, &r); err != nil {
				t.Fatal(err)
			}
			if tc.bad {
				if !r.Found || r.Answer != nil || r.BadAnswer == "" {
					t.Fatalf("bad row answered %+v", r)
				}
				return
			}
			a := r.Answer
			if a == nil || a.PartnerRef != "HDJG1" || a.AsOf.Format("2006-01-02") != "2026-11-30" || len(a.Covered) != 1 || len(a.Facts) != 3 ||
				a.Facts[0].AmountFen != 850000 || a.Facts[1].AmountFen != 320050 || a.Facts[2].Kind != "nursing_fee" || a.Facts[2].Period != "2026-10" {
				t.Fatalf("%+v", a)
			}
		})
	}
}

func FuzzParseRow(f *testing.F) {
	f.Add(row("VR1:hrss", "2026-11-30", persons))
	f.Add([]byte(`{"request_key":"VR1:hrss","persons":[{"zjhm":"1"}],"as_of":"2026-11-30"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		call, a, err := ParseRow(data)
		if err != nil {
			if !errors.Is(err, ErrNoCall) && !errors.Is(err, household.ErrBadAnswer) {
				t.Fatalf("error neither ErrNoCall nor ErrBadAnswer: %v", err)
			}
			return
		}
		if !strings.HasSuffix(call, ":"+PartnerID) {
			t.Fatalf("call %q", call)
		}
		for _, fc := range a.Facts {
			if fc.IDNumber == "" || fc.Period == "" {
				t.Fatalf("fact without person or month: %+v", fc)
			}
		}
	})
}
