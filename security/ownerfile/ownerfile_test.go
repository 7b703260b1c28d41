package ownerfile_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

// TestWrite: the file appears whole with mode 0600, replaces an older one
// (of a wider mode) and leaves no temporary file.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys.env")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ownerfile.Write(p, []byte("new content")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new content" {
		t.Fatalf("content %q %v", b, err)
	}
	checkMode(t, p)
	onlyFile(t, dir, "keys.env")
}

// TestAbortLeavesNothing: an aborted file never appears and the old one
// stays as it was; Abort after Commit does nothing; a second Commit fails.
func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "report.csv")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ownerfile.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("half"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("a reader sees %q while the new file is being written", b)
	}
	f.Abort()
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("after abort: %q", b)
	}
	onlyFile(t, dir, "report.csv")

	f, err = ownerfile.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("whole"); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if b, _ := os.ReadFile(p); string(b) != "whole" {
		t.Errorf("after commit and abort: %q", b)
	}
	if err := f.Commit(); err == nil {
		t.Error("a second commit: want an error")
	}
	checkMode(t, p)
	onlyFile(t, dir, "report.csv")
}

// TestCreateInMissingDir fails with the path named.
func TestCreateInMissingDir(t *testing.T) {
	if err := ownerfile.Write(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x")); err == nil {
		t.Error("want an error for a missing directory")
	}
}

func checkMode(t *testing.T, p string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, name)
	}
}
