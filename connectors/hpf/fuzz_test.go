package hpf

import (
	"errors"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/household"
)

const sample = `<HouseholdQueryResponse xmlns="http://gjj.sh.gov.cn/ws/verify/2025"><serialNo>GJJ1</serialNo><dataDate>20261130</dataDate>
<member><idNo>310104195001010012</idNo><account><unitName>上海申城物流有限公司</unitName><personalMonthly>700.00</personalMonthly><ratePercent>7</ratePercent><lastPaidMonth>202610</lastPaidMonth></account>
<loan><contractNo>DK1</contractNo><monthlyRepayment>3000</monthlyRepayment><lastRepaidMonth>202610</lastRepaidMonth></loan></member></HouseholdQueryResponse>`

func TestParseAnswerRule(t *testing.T) {
	a, err := ParseAnswer([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	// 700 yuan at 7% is a 10,000 yuan wage; a 3,000 yuan repayment within
	// the 50% limit implies at least 6,000 yuan of income.
	if len(a.Facts) != 2 || a.Facts[0].Kind != "hpf_wage" || a.Facts[0].AmountFen != 1_000_000 || a.Facts[1].AmountFen != 600_000 ||
		a.Facts[1].Category != household.Evidence {
		t.Fatalf("%+v", a.Facts)
	}
	if WageFromContribution(100, 0) != 0 || IncomeFromLoan(150) != 300 {
		t.Fatal("rule")
	}
	for _, bad := range []string{`<HouseholdQueryResponse xmlns="http://gjj.sh.gov.cn/ws/verify/2025"><dataDate>20261130</dataDate><member><idNo>1</idNo><account><personalMonthly>1</personalMonthly><ratePercent>40</ratePercent><lastPaidMonth>202610</lastPaidMonth></account></member></HouseholdQueryResponse>`, "x"} {
		if _, err := ParseAnswer([]byte(bad)); !errors.Is(err, household.ErrBadAnswer) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAnswer(data)
		if err != nil {
			if !errors.Is(err, household.ErrBadAnswer) {
				t.Fatalf("error not ErrBadAnswer: %v", err)
			}
			return
		}
		for _, fc := range a.Facts {
			if fc.IDNumber == "" || fc.Category != household.Evidence {
				t.Fatalf("%+v", fc)
			}
		}
	})
}
