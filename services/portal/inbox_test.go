package portal

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/shanghai-mca/mzhub/security/mask"
)

func TestParseEligible(t *testing.T) {
	good := idFor("310104", "19500101", 1)
	body := EligibleHeader + "\n" +
		good + ",王伟,310104,normal,shanghai,,,,\n" +
		idFor("310104", "19500101", 2) + ",李娜,310104,deceased,other,2,3,150000,dibao\n" +
		"310104195001010019,赵强,310104,normal,shanghai,,,,\n" + // bad check digit
		good + ",王伟,320102,normal,shanghai,,,,\n" + // not Shanghai
		good + ",王伟,310104,alive,shanghai,,,,\n" + // status
		good + ",王伟,310104,normal,mars,,,,\n" + // hukou
		good + ",王伟,310104,normal,shanghai,9,,,\n" + // grade
		good + ",王伟,310104,normal,shanghai,,,,rich\n" + // assistance
		good + ",王伟\n" // fields
	var got []EligibleRecord
	bad, err := ParseEligible([]byte(body), func(_ int64, r EligibleRecord) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Status != statusDeceased || got[1].Attrs.MonthlyIncomeFen != 150000 || got[1].Attrs.AssistanceType != "dibao" {
		t.Fatalf("records: %+v", got)
	}
	if len(bad) != 7 || bad[0].Line != 4 || bad[6].Line != 10 {
		t.Fatalf("refused: %+v", bad)
	}
	for _, b := range bad {
		if strings.Contains(b.Reason, "310104195001010019") {
			t.Fatalf("a reason shows a whole ID number: %s", b.Reason)
		}
	}
	if _, err := ParseEligible([]byte("id,name\n"), func(int64, EligibleRecord) error { return nil }); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("wrong header: %v", err)
	}
	// GB18030 files from the business system read the same.
	gb, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(EligibleHeader + "\n" + good + ",王伟,310104,normal,shanghai,,,,\n"))
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	if bad, err := ParseEligible(gb, func(_ int64, r EligibleRecord) error { got = append(got, r); return nil }); err != nil || len(bad) != 0 || len(got) != 1 || got[0].Name != "王伟" {
		t.Fatalf("GB18030: %+v %+v %v", got, bad, err)
	}
}

func FuzzParseEligible(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteEligible(&buf, []EligibleRecord{NewEligible(idFor("310104", "19500101", 1), "王伟", "310104", "shanghai", 1, "dibao")})
	f.Add(buf.Bytes())
	f.Add([]byte(EligibleHeader + "\n\"unterminated\n"))
	f.Add([]byte("\xef\xbb\xbf" + EligibleHeader + "\n310104,a,b,c,d,e,f,g,h\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseEligible(b, func(_ int64, r EligibleRecord) error {
			if !mask.ValidID(r.IDNumber) || !divisionRE.MatchString(r.Division) || r.Name == "" {
				t.Fatalf("invalid record passed: %+v", r)
			}
			switch r.Status {
			case statusNormal, statusDeceased, statusMovedOut, statusSuspended:
			default:
				t.Fatalf("status %q passed", r.Status)
			}
			return nil
		})
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(StatusHeader + "\nSBTEST000001,accepted,accepted,,,2026-12-02T10:00:00+08:00\nSBTEST000001,done,refused,,,\n"))
	f.Add([]byte(StatusHeader + "\nSBTEST000001,done,approved,ok,JZZM-1,\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStatus(b, func(_ int64, r Report) error {
			if r.Node == "prereview" || r.ApplicationID == "" {
				t.Fatalf("bad report passed: %+v", r)
			}
			return nil
		})
	})
}
