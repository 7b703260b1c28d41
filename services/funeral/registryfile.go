package funeral

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/security/keys"
)

// fileHeader opens every registry file written by the partner command.
const fileHeader = `# Funeral partner registry: the non-secret fields of each partner (mzhub partner add
# appends here). Credentials and enable/disable live in the state store (docs/security.md,
# "Partners"); key_ids listed here are imported once as keys held by the key provider.
`

// FileFor names the registry file of a role inside dir.
func FileFor(dir string, role Role) string {
	switch role {
	case RoleCemetery:
		return filepath.Join(dir, "cemeteries.yaml")
	case RoleColumbarium:
		return filepath.Join(dir, "columbaria.yaml")
	}
	return filepath.Join(dir, "funeral-homes.yaml")
}

// AppendToFile adds p's non-secret fields to its role's registry file in
// dir, editing the file in place: comments, order and quoting of what is
// there stay as they are (the file is parsed as a YAML node tree, the new
// entry appended to its partners list). A missing file is created with the
// standard header. Key ids and the disabled flag are not written: they are
// state in the store. The result must load as a registry (LoadRegistry) or
// the file is left untouched.
func AppendToFile(dir string, p Partner) error {
	if err := p.Validate(); err != nil {
		return err
	}
	name := FileFor(dir, p.Role)
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		b, err = []byte(fileHeader+"partners: []\n"), nil
	}
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: want a mapping with a partners list", name)
	}
	root := doc.Content[0]
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "partners" {
			list = root.Content[i+1]
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s: no partners list", name)
	}
	p.KeyIDs, p.Disabled = nil, false
	var entry yaml.Node
	if err := entry.Encode(p); err != nil {
		return err
	}
	for i := 0; i+1 < len(entry.Content); i += 2 {
		if entry.Content[i].Value == "key_ids" {
			entry.Content = append(entry.Content[:i], entry.Content[i+2:]...)
			break
		}
	}
	list.Style = 0 // a "[]" list becomes a block list
	list.Content = append(list.Content, &entry)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := checkEdited(dir, name, out.Bytes()); err != nil {
		return fmt.Errorf("%s: the edited registry would not load: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// checkEdited loads the registry of dir as it would be with name's content
// replaced by edited.
func checkEdited(dir, name string, edited []byte) error {
	f, err := DecodePartnerFile(bytes.NewReader(edited))
	if err != nil {
		return err
	}
	all := f.Partners
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, other := range files {
		if filepath.Clean(other) == filepath.Clean(name) {
			continue
		}
		b, err := os.ReadFile(other)
		if err != nil {
			return err
		}
		of, err := DecodePartnerFile(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", other, err)
		}
		all = append(all, of.Partners...)
	}
	_, err = NewRegistry(all)
	return err
}

// Issued is a newly issued credential. The secret is shown once and kept
// only by the key provider.
type Issued struct {
	PartnerID string
	KeyID     string
	// SecretHex is the secret as the integrator receives it (hex of 32 random bytes).
	SecretHex string
}

// newKeyID makes a key id from the partner id, the time and a random
// suffix (two keys issued in one second differ): fh01-k20261127093000-3fa9c2.
func newKeyID(partnerID string, now time.Time) string {
	short := partnerID[strings.IndexByte(partnerID, '.')+1:]
	return short + "-" + keys.NewKID(now) + "-" + hex.EncodeToString(keys.Random(3))
}
