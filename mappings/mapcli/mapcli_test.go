package mapcli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const banks = "../../configs/mappings/banks"

func TestRun(t *testing.T) {
	dir := t.TempDir()
	sample, err := os.ReadFile(filepath.Join(banks, "../canonical/testdata/payments.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// One broken record (bad ID check digit) among the good ones.
	broken := bytes.Replace(sample, []byte("310115195507093214"), []byte("310115195507093215"), 1)
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), broken, 0o644); err != nil {
		t.Fatal(err)
	}
	params := []string{"--param", "batch_no=MZ20261100001", "--param", "file_date=2026-11-27", "--param", "payer_account=31001234500050001234"}
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderr   string
		noStderr string
	}{
		{"help", []string{"--help"}, 0, "", "Usage: mzhub map", ""},
		{"missing flags", []string{"--mapping", "x"}, 2, "", "Usage", ""},
		{"bad mapping", []string{"--mapping", filepath.Join(dir, "nope.yaml"), "--in", "a", "--out", "b"}, 1, "", "nope.yaml", ""},
		{"a reject fails the run", append([]string{"--mapping", filepath.Join(banks, "boc-disbursement.mapping.yaml"),
			"--in", filepath.Join(dir, "in.csv"), "--out", filepath.Join(dir, "out.txt"), "--rejects", filepath.Join(dir, "rej.csv")}, params...),
			1, "written   4 details", "1 source records rejected", "310115195507093215"},
		{"rejects allowed explicitly", append([]string{"--mapping", filepath.Join(banks, "boc-disbursement.mapping.yaml"), "--allow-rejects",
			"--in", filepath.Join(dir, "in.csv"), "--out", filepath.Join(dir, "out.txt"), "--rejects", filepath.Join(dir, "rej.csv")}, params...),
			0, "written   4 details", "line 3 detail field person_id: rejected", "310115195507093215"},
	}
	// A rejects file left readable by others keeps no such mode.
	if err := os.WriteFile(filepath.Join(dir, "rej.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), &stdout, &stderr, false, tc.args)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
			if tc.noStderr != "" && strings.Contains(stderr.String()+stdout.String(), tc.noStderr) {
				t.Errorf("output shows %q unmasked", tc.noStderr)
			}
		})
	}
	if fi, err := os.Stat(filepath.Join(dir, "rej.csv")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("rejects file (raw IDs, names, accounts): %v, %v; want mode 0600", fi.Mode(), err)
	}
	rej, err := os.ReadFile(filepath.Join(dir, "rej.csv"))
	if err != nil || !bytes.Contains(rej, []byte("310115195507093215")) || bytes.Count(rej, []byte("\n")) != 1 {
		t.Errorf("reject file %q (%v)", rej, err)
	}
	out, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil || bytes.Count(out, []byte("\r\n")) != 6 || !bytes.HasPrefix(out, []byte("HFFMZ20261100001")) {
		t.Errorf("output %q (%v)", out, err)
	}
}

// TestRunRefused: a source file the cycle would refuse (trailer count,
// truncated, empty, GBK bytes 81 7F) fails, and leaves no output behind;
// --accept-mismatch takes a trailer mismatch explicitly, never bad bytes.
func TestRunRefused(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(banks, "testdata/boc-disbursement-return.txt"))
	if err != nil {
		t.Fatal(err)
	}
	zhang := []byte{0xD5, 0xC5} // 张 in GBK, on line 2
	cases := []struct {
		name   string
		data   []byte
		accept bool
		code   int
		say    string
	}{
		{"as sent", data, false, 0, "verdict   accepted"},
		{"trailer count", bytes.Replace(data, []byte("T0000000005"), []byte("T0000000004"), 1), false, 1, "count is 4, details give 5"},
		{"trailer count accepted explicitly", bytes.Replace(data, []byte("T0000000005"), []byte("T0000000004"), 1), true, 0, "MISMATCH"},
		{"truncated", data[:bytes.Index(data, []byte("\nD00000003"))+1], false, 1, "no valid trailer record"},
		{"empty", nil, false, 1, "no detail records"},
		{"GBK 81 7F", bytes.Replace(data, zhang, []byte{0x81, 0x7F}, 1), false, 1, "first at line 2"},
		{"GBK 81 7F not accepted by --accept-mismatch", bytes.Replace(data, zhang, []byte{0x81, 0x7F}, 1), true, 1, "81 7F"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, "ret.txt")
			if err := os.WriteFile(in, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, fmt.Sprintf("out%d.csv", i))
			args := []string{"--mapping", filepath.Join(banks, "boc-disbursement-return.mapping.yaml"), "--in", in, "--out", out, "--allow-rejects"}
			if tc.accept {
				args = append(args, "--accept-mismatch")
			}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), &stdout, &stderr, false, args)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.say) {
				t.Errorf("exit %d (want %d) stdout %s stderr %s", code, tc.code, stdout.String(), stderr.String())
			}
			_, err := os.Stat(out)
			if (code == 0) != (err == nil) {
				t.Errorf("exit %d, output file: %v", code, err)
			}
			if tmps, _ := filepath.Glob(filepath.Join(dir, ".out*")); len(tmps) > 0 {
				t.Errorf("temporary output left: %v", tmps)
			}
		})
	}
}

// TestRunParts converts a CCB return split over two files (records in the
// bank's order) to canonical CSV; with a part missing it fails.
func TestRunParts(t *testing.T) {
	dir := t.TempDir()
	sample, err := os.ReadFile(filepath.Join(banks, "testdata/ccb-disbursement-return.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// Split the single-part sample: items 1-2 in part 1, 3-5 in part 2.
	s := string(sample)
	head := s[:strings.Index(s, "  <Item>")]
	items := strings.SplitAfter(s[strings.Index(s, "  <Item>"):strings.Index(s, "  <Summary>")], "</Item>\n")
	tail := "</CCBReturn>\n"
	part := func(no int, its []string, count int, total string) string {
		h := strings.Replace(head, "<PartNo>1</PartNo><PartTotal>1</PartTotal>", "<PartNo>"+string(rune('0'+no))+"</PartNo><PartTotal>2</PartTotal>", 1)
		return h + strings.Join(its, "") + "  <Summary><Count>" + string(rune('0'+count)) + "</Count><TotalFen>" + total + "</TotalFen></Summary>\n" + tail
	}
	p1 := part(1, items[:2], 2, "125000")
	p2 := part(2, items[2:5], 3, "225050")
	for name, body := range map[string]string{"p1.xml": p1, "p2.xml": p2} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mapping := filepath.Join(banks, "ccb-disbursement-return.mapping.yaml")
	want, err := os.ReadFile(filepath.Join(banks, "../canonical/testdata/ccb-disbursement-return.csv"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		parts []string
		code  int
		say   string
	}{
		{"both parts, reversed", []string{"p2.xml", "p1.xml"}, 0, "parts     2 input files"},
		{"part 2 missing", []string{"p1.xml"}, 1, "MISMATCH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--mapping", mapping, "--out", filepath.Join(dir, "out.csv")}
			for _, p := range tc.parts {
				args = append(args, "--in", filepath.Join(dir, p))
			}
			var stdout, stderr bytes.Buffer
			if code := Run(context.Background(), &stdout, &stderr, false, args); code != tc.code || !strings.Contains(stdout.String(), tc.say) {
				t.Fatalf("exit %d, stdout %s stderr %s", code, stdout.String(), stderr.String())
			}
			if tc.code != 0 {
				return
			}
			got, _ := os.ReadFile(filepath.Join(dir, "out.csv"))
			// Same records as the single-file return, in the parts' order.
			gl, wl := strings.Split(strings.TrimSpace(string(got)), "\n"), strings.Split(strings.TrimSpace(string(want)), "\n")
			slices.Sort(gl)
			slices.Sort(wl)
			if !slices.Equal(gl, wl) {
				t.Errorf("got %q\nwant %q", gl, wl)
			}
		})
	}
}
