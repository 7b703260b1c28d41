package hub_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// requireNoPersonalData fails for any file under the hub's data directory
// that holds an ID number or account of the list generated with opt in
// plaintext, and for any file or folder there readable by others than the
// owner (issue 17, item 2).
func requireNoPersonalData(t *testing.T, dataDir string, opt disbursement.GenerateOptions) {
	t.Helper()
	var list bytes.Buffer
	if err := disbursement.WriteList(&list, opt); err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for i, line := range strings.Split(strings.TrimSpace(list.String()), "\n") {
		f := strings.Split(line, ",")
		if i == 0 || len(f) < 3 {
			continue
		}
		secrets = append(secrets, f[0], f[2])
	}
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		if rel == "configs" && d.IsDir() {
			// The shipped configuration the demo extracts (hub.DemoConfig)
			// is public: it is in the binary. Nothing else is exempt.
			return fs.SkipDir
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s: mode %v, want owner only", rel, perm)
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds an ID number or account of the list in plaintext (%s…%s)", rel, s[:3], s[len(s)-4:])
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
