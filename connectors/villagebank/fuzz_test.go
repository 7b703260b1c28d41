package villagebank

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors/household"
)

const sample = `{"rsp_code":"0000","rsp_msg":"成功","serial":"VB01","data_date":"20261130","searched":["310104195001010012"],
"accounts":[{"cert_no":"310104195001010012","acct_no":"6201000000123456","acct_type":"活期","balance":"52000.10","currency":"CNY","attachment_url":"https://vb01.example/att/1.pdf"}]}`

func TestParseAnswer(t *testing.T) {
	a, err := ParseAnswer("某村镇银行", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Facts) != 1 || a.Facts[0].AmountFen != 5_200_010 || a.Facts[0].Link != "https://vb01.example/att/1.pdf" || strings.Contains(a.Facts[0].Source, "0000123456") {
		t.Fatalf("%+v", a.Facts)
	}
	for _, bad := range []string{`{"rsp_code":"9001"}`, strings.Replace(sample, "CNY", "USD", 1), strings.Replace(sample, "https://vb01.example/att/1.pdf", "javascript:alert(1)", 1)} {
		if _, err := ParseAnswer("b", []byte(bad)); !errors.Is(err, household.ErrBadAnswer) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestShippedFile loads configs/partners/villagebanks.yaml: one template, 14 banks.
func TestShippedFile(t *testing.T) {
	f, err := LoadFile(filepath.Join("..", "..", "configs", "partners", "villagebanks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Banks) != 14 {
		t.Fatalf("%d banks", len(f.Banks))
	}
	cs, err := Clients(f)
	if err != nil || len(cs) != 14 || cs[13].ID() != "villagebank.vb14" {
		t.Fatalf("%v %v", cs, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("defaults: {query_path: x}\nbanks: [{code: a, url: ftp://x}, {code: a, url: http://h}]\nextra: 1\n"), 0o600)
	if _, err := LoadFile(bad); err == nil {
		t.Fatal("bad file loaded")
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAnswer("b", data)
		if err != nil {
			if !errors.Is(err, household.ErrBadAnswer) {
				t.Fatal(err)
			}
			return
		}
		for _, fc := range a.Facts {
			if fc.Category != household.Asset {
				t.Fatalf("%+v", fc)
			}
		}
	})
}
