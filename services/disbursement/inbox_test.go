package disbursement

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestInbox: only .csv files directly in the inbox are lists; a name with
// a directory, another suffix or no file is ErrNotInInbox.
func TestInbox(t *testing.T) {
	dir := t.TempDir()
	svc := newService(t, openDB(t, dir), dir, nil, nil, nil)
	if names, err := svc.InboxLists(); err != nil || len(names) != 0 {
		t.Fatalf("no inbox yet: %v %v", names, err)
	}
	if err := os.MkdirAll(filepath.Join(svc.InboxDir(), "sub.csv"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b-2026-11.csv", "a-2026-11.csv", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(svc.InboxDir(), n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if names, err := svc.InboxLists(); err != nil || !slices.Equal(names, []string{"a-2026-11.csv", "b-2026-11.csv"}) {
		t.Fatalf("lists %v %v", names, err)
	}
	if p, err := svc.InboxFile("a-2026-11.csv"); err != nil || p != filepath.Join(svc.InboxDir(), "a-2026-11.csv") {
		t.Fatalf("InboxFile: %q %v", p, err)
	}
	for _, bad := range []string{"", "notes.txt", "missing.csv", "sub.csv", "../a-2026-11.csv", "x/a-2026-11.csv", filepath.Join(svc.InboxDir(), "a-2026-11.csv")} {
		if _, err := svc.InboxFile(bad); !errors.Is(err, ErrNotInInbox) {
			t.Errorf("InboxFile(%q): %v, want ErrNotInInbox", bad, err)
		}
	}
}
