package ownerfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Mode is the permission every file written here gets: owner read/write.
const Mode os.FileMode = 0o600

// File is a file being written: write to it, then Commit to put it in
// place or Abort to drop it. It is not safe for concurrent use.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing path: a temporary file (mode 0600) in path's
// directory, named after it and hidden.
func Create(path string) (*File, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return nil, fmt.Errorf("ownerfile: %w", err)
	}
	// CreateTemp makes 0600 files; Chmod says so whatever the platform.
	if err := tmp.Chmod(Mode); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return nil, fmt.Errorf("ownerfile: %w", err)
	}
	return &File{File: tmp, path: path}, nil
}

// Commit syncs the content and renames it to the path given to Create,
// replacing any file there. On error nothing is left behind.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("ownerfile: %s: already committed or aborted", f.path)
	}
	f.done = true
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("ownerfile: write %s: %w", f.path, err)
	}
	return nil
}

// Abort drops what was written (safe to call after Commit: then it does
// nothing), so `defer f.Abort()` cleans up every early return.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// Write writes data to path atomically with mode 0600.
func Write(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.File.Write(data); err != nil {
		return fmt.Errorf("ownerfile: write %s: %w", path, err)
	}
	return f.Commit()
}
