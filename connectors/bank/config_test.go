package bank

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedConfigsAndLayouts(t *testing.T) {
	cfgs, err := LoadConfigs(filepath.Join("..", "..", "configs", "partners", "banks"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 6 {
		t.Fatalf("%d bank configs, want 6", len(cfgs))
	}
	for _, c := range cfgs {
		fs, err := LoadFileSet(os.DirFS(filepath.Join("..", "..", "configs", "mappings")), c.Layouts)
		if err != nil {
			t.Errorf("%s: %v", c.Code, err)
			continue
		}
		if fs.Disbursement == nil || fs.Return == nil || fs.Deduction == nil || fs.DeductionReturn == nil {
			t.Errorf("%s: a layout is missing", c.Code)
		}
	}
}

func TestDecodeConfigStrict(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "code: boc\nbank_code: '104'\ncolour: red\n", "colour"},
		{"no host key", "code: boc\nbank_code: '104'\nsftp: {addr: 'h:22', user: u, password: p}\nlayouts: {disbursement: a, return: b}\n", "host key"},
		{"bad file name", "code: boc\nbank_code: '104'\nfile_name: x\n", "file_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFileNameFor(t *testing.T) {
	c := DefaultConfig()
	c.Code = "ccb"
	if got := c.FileNameFor(Deduction, "2026-12", ".txt"); got != "CCB_DK_202612.txt" {
		t.Fatal(got)
	}
}
