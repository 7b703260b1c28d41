package cardcenter_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
)

// FuzzApplication decodes and checks an application item as the puller
// does: never a panic, a refusal is ErrMalformed, an accepted 一卡通
// application has a bank, and a reason never carries a whole account.
func FuzzApplication(f *testing.F) {
	bt := bankTypes(f)
	f.Add(`{"app_id":"A1","id_number":"310101192501010014","card_type":"sscard","channel":"sscard","yikatong":true,"applied_on":"2026-12-01","district":"310101","bank_code":"301","account":"6222620000111122223"}`)
	f.Add(`{"app_id":"A2","id_number":"310101192501010014","card_type":"senior","channel":"window","applied_on":"2026-12-01","bank_code":"999"}`)
	f.Add(`{"app_id":"","yikatong":true,"account":"12"}`)
	f.Fuzz(func(t *testing.T, item string) {
		var a cardcenter.Application
		if json.Unmarshal([]byte(item), &a) != nil {
			return
		}
		err := a.Check(day, bt)
		if err == nil {
			if a.Yikatong && a.Bank == "" {
				t.Fatalf("一卡通 accepted without a bank: %+v", a)
			}
			return
		}
		// (The other fields' text, which a reason may quote, could hold the same digits.)
		if len(a.Account) > 4 && strings.Contains(err.Error(), a.Account) && !strings.Contains(a.BankCode+a.CardType+a.AppliedOn+a.IDNumber, a.Account) {
			t.Fatalf("reason shows the account: %v", err)
		}
	})
}
