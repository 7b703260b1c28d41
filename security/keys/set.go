package keys

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// A Set is a cluster's key set as the environment provider reads it:
// key name → key bytes. Every replica of a cluster gets the same set (a
// systemd EnvironmentFile, a Kubernetes Secret); `mzhub keys generate`
// makes and rotates it.
type Set map[string][]byte

// Complete adds to s every key the hub needs that s lacks (the first
// field key, the blind-index, audit, person-key and SM2 signing keys),
// and, when rotateField is set, a new field key that becomes the active
// one. Existing keys are never changed. It returns the names it added.
func (s Set) Complete(now time.Time, rotateField bool) ([]string, error) {
	var added []string
	var fields []string
	for n := range s {
		if err := CheckName(n); err != nil {
			return nil, err
		}
		if strings.HasPrefix(n, FieldPrefix) {
			fields = append(fields, n)
		}
	}
	sort.Strings(fields)
	if len(fields) == 0 || rotateField {
		name := FieldPrefix + NewKID(now)
		for len(fields) > 0 && name <= fields[len(fields)-1] {
			now = now.Add(time.Second)
			name = FieldPrefix + NewKID(now)
		}
		s[name] = Random(FieldKeySize)
		added = append(added, name)
	}
	for _, k := range []struct {
		name string
		gen  func() ([]byte, error)
	}{
		{BlindName, func() ([]byte, error) { return Random(MACKeySize), nil }},
		{AuditName, func() ([]byte, error) { return Random(MACKeySize), nil }},
		{DisbursementPersonName, func() ([]byte, error) { return Random(MACKeySize), nil }},
		{SM2SignName, GenerateSM2},
	} {
		if _, ok := s[k.name]; ok {
			continue
		}
		b, err := k.gen()
		if err != nil {
			return added, err
		}
		s[k.name] = b
		added = append(added, k.name)
	}
	return added, nil
}

// Names returns the set's key names, sorted.
func (s Set) Names() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ReadEnvFile reads a set from an environment file as WriteEnvFile writes
// it (MZHUB_KEY_<NAME>=<hex> lines; blank lines and # comments ignored;
// other variables are refused, so that a file with the database password
// is not taken for a key file by mistake).
func ReadEnvFile(r io.Reader) (Set, error) {
	s := Set{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			return nil, fmt.Errorf("keys: env file line %d: want %s<NAME>=<hex>", line, EnvPrefix)
		}
		name := nameFromEnv(k)
		if err := CheckName(name); err != nil {
			return nil, fmt.Errorf("keys: env file line %d: %w", line, err)
		}
		b, err := hex.DecodeString(strings.Trim(v, `"'`))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("keys: env file line %d: %s is not hex", line, k)
		}
		if _, dup := s[name]; dup {
			return nil, fmt.Errorf("keys: env file line %d: %s twice", line, k)
		}
		s[name] = b
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keys: env file: %w", err)
	}
	return s, nil
}

// WriteEnvFile writes s as MZHUB_KEY_<NAME>=<hex> lines, sorted by name:
// a systemd EnvironmentFile, or `kubectl create secret generic
// --from-env-file`.
func (s Set) WriteEnvFile(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# mzhub key set: secret. Mode 0600; give every replica the same set.\n")
	for _, n := range s.Names() {
		fmt.Fprintf(&b, "%s=%s\n", EnvName(n), hex.EncodeToString(s[n]))
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteSecret writes s as a Kubernetes Secret manifest named name whose
// keys are the MZHUB_KEY_* variables (for envFrom: secretRef).
func (s Set) WriteSecret(w io.Writer, name string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\ntype: Opaque\nstringData:\n", name)
	for _, n := range s.Names() {
		fmt.Fprintf(&b, "  %s: %q\n", EnvName(n), hex.EncodeToString(s[n]))
	}
	_, err := w.Write(b.Bytes())
	return err
}
