package keys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrNotFound is returned for a name the provider does not hold.
	ErrNotFound = errors.New("keys: key not found")
	// ErrBadName is returned for a name that breaks the naming rule.
	ErrBadName = errors.New("keys: bad key name")
	// ErrReadOnly is returned by providers that cannot store keys.
	ErrReadOnly = errors.New("keys: provider is read-only")
)

// Provider hands out key material by name. Implementations must be safe for
// concurrent use and must never log key material. Callers must not modify
// the returned slice.
type Provider interface {
	// Get returns the key stored under name, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// List returns the names under prefix (for example "field/"), sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Put stores a new key under name; read-only providers return ErrReadOnly.
	// Put never overwrites an existing key (rotation adds a new name).
	Put(ctx context.Context, name string, key []byte) error
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*$`)

// CheckName reports whether name follows the naming rule.
func CheckName(name string) error {
	if !nameRE.MatchString(name) || len(name) > 128 {
		return fmt.Errorf("%w: %q (want lower-case [a-z0-9-] segments separated by /)", ErrBadName, name)
	}
	return nil
}

// File keeps keys as hex text files under a directory: name "field/k1" is
// file <dir>/field/k1.key. New files are written with mode 0600 and
// directories with 0700.
type File struct {
	dir string
}

var _ Provider = (*File)(nil)

// NewFile returns a file provider rooted at dir (created on first Put).
func NewFile(dir string) *File { return &File{dir: dir} }

func (f *File) path(name string) string {
	return filepath.Join(f.dir, filepath.FromSlash(name)+".key")
}

// Get reads the key file of name.
func (f *File) Get(_ context.Context, name string) ([]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (file provider %s)", ErrNotFound, name, f.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: read %s: %w", name, err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("keys: %s: file is not hex", name)
	}
	return k, nil
}

// List walks the directory for key files under prefix.
func (f *File) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".key") {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.ToSlash(rel), ".key")
		if strings.HasPrefix(name, prefix) && CheckName(name) == nil {
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keys: list %s: %w", f.dir, err)
	}
	sort.Strings(out)
	return out, nil
}

// Put writes a new key file; an existing one is never overwritten.
func (f *File) Put(_ context.Context, name string, key []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	p := f.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("keys: put %s: %w", name, err)
	}
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keys: put %s: %w", name, err)
	}
	if _, err := fh.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		_ = fh.Close()
		return fmt.Errorf("keys: put %s: %w", name, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("keys: put %s: %w", name, err)
	}
	return nil
}

// Deleter is a provider that can remove a key (`mzhub keys retire`).
type Deleter interface {
	// Delete removes the key stored under name, or returns an error
	// wrapping ErrNotFound.
	Delete(ctx context.Context, name string) error
}

var _ Deleter = (*File)(nil)

// Delete overwrites the key file of name with zeros, syncs it and removes
// it.
func (f *File) Delete(_ context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	p := f.path(name)
	fh, err := os.OpenFile(p, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s (file provider %s)", ErrNotFound, name, f.dir)
	}
	if err != nil {
		return fmt.Errorf("keys: delete %s: %w", name, err)
	}
	fi, err := fh.Stat()
	if err == nil {
		_, err = fh.Write(make([]byte, fi.Size()))
	}
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keys: delete %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("keys: delete %s: %w", name, err)
	}
	return nil
}

// EnvPrefix starts the environment variables of the Env provider.
const EnvPrefix = "MZHUB_KEY_"

// EnvName returns the environment variable holding name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(strings.ReplaceAll(name, "/", "__"), "-", "_"))
}

func nameFromEnv(v string) string {
	s := strings.ToLower(strings.TrimPrefix(v, EnvPrefix))
	s = strings.ReplaceAll(s, "__", "/")
	return strings.ReplaceAll(s, "_", "-")
}

// Env reads hex keys from MZHUB_KEY_* environment variables. It is
// read-only: keys are provisioned by the deployment (systemd credentials,
// Kubernetes secrets).
type Env struct {
	environ func() []string
}

var _ Provider = (*Env)(nil)

// NewEnv returns an environment provider. environ is os.Environ when nil.
func NewEnv(environ func() []string) *Env {
	if environ == nil {
		environ = os.Environ
	}
	return &Env{environ: environ}
}

func (e *Env) lookup(v string) (string, bool) {
	for _, kv := range e.environ() {
		if k, val, ok := strings.Cut(kv, "="); ok && k == v {
			return val, true
		}
	}
	return "", false
}

// Get reads MZHUB_KEY_<NAME>.
func (e *Env) Get(_ context.Context, name string) ([]byte, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	v := EnvName(name)
	s, ok := e.lookup(v)
	if !ok {
		return nil, fmt.Errorf("%w: %s (environment variable %s)", ErrNotFound, name, v)
	}
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("keys: %s is not hex", v)
	}
	return k, nil
}

// List returns the names of the MZHUB_KEY_* variables under prefix.
func (e *Env) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	for _, kv := range e.environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		if n := nameFromEnv(k); strings.HasPrefix(n, prefix) && CheckName(n) == nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Put is not supported: the environment is provisioned from outside.
func (e *Env) Put(context.Context, string, []byte) error {
	return fmt.Errorf("%w: set %s in the deployment", ErrReadOnly, EnvPrefix+"*")
}

// Random returns n bytes from crypto/rand.
func Random(n int) []byte {
	b := make([]byte, n)
	// Since Go 1.24 crypto/rand.Read never returns an error: it crashes the
	// process irrecoverably if the system's generator fails.
	_, _ = rand.Read(b)
	return b
}

// NewKID returns a field-key id for a key created at t: "k" and the UTC time
// to the second, so ids sort in creation order.
func NewKID(t time.Time) string {
	return "k" + t.UTC().Format("20060102150405")
}

// Ensure stores a fresh random key of n bytes under name unless one exists,
// and reports whether it created it. It is how demo and first-run keys come
// to exist.
func Ensure(ctx context.Context, p Provider, name string, n int) (bool, error) {
	_, err := p.Get(ctx, name)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := p.Put(ctx, name, Random(n)); err != nil {
		return false, err
	}
	return true, nil
}
