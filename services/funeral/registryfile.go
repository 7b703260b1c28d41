package funeral

import (
	"bytes"
	"context"
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
const fileHeader = `# Funeral partner registry (mzhub partner add|rotate-key|disable edits this file).
# No secrets here: key_ids name keys held by the key provider as partner/<key id>.
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

func readFile(name string) (PartnerFile, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return PartnerFile{}, nil
	}
	if err != nil {
		return PartnerFile{}, err
	}
	return DecodePartnerFile(bytes.NewReader(b))
}

func writeFile(name string, f PartnerFile) error {
	var b bytes.Buffer
	b.WriteString(fileHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// Issued is a newly issued credential. The secret is shown once and kept
// only by the key provider.
type Issued struct {
	PartnerID string
	KeyID     string
	// SecretHex is the secret as the integrator receives it (hex of 32 random bytes).
	SecretHex string
}

// newKeyID makes a key id from the partner id and the time: fh01-k20261127093000.
func newKeyID(partnerID string, now time.Time) string {
	short := partnerID[strings.IndexByte(partnerID, '.')+1:]
	return short + "-" + keys.NewKID(now)
}

func issue(ctx context.Context, kp keys.Provider, partnerID string, now time.Time) (Issued, error) {
	kid := newKeyID(partnerID, now)
	secret := keys.Random(32)
	if err := kp.Put(ctx, keys.PartnerPrefix+kid, secret); err != nil {
		return Issued{}, fmt.Errorf("store key %s: %w", kid, err)
	}
	return Issued{PartnerID: partnerID, KeyID: kid, SecretHex: hex.EncodeToString(secret)}, nil
}

// AddPartner adds p to its role's file in dir and issues its first key:
// 32 random bytes held by the key provider, handed to the integrator as hex
// (docs/signing.md).
func AddPartner(ctx context.Context, dir string, kp keys.Provider, p Partner, now time.Time) (Issued, error) {
	reg, err := LoadRegistry(dir)
	if err != nil {
		return Issued{}, err
	}
	if _, dup := reg.Partner(p.ID); dup {
		return Issued{}, fmt.Errorf("partner %s already exists", p.ID)
	}
	iss, err := issue(ctx, kp, p.ID, now)
	if err != nil {
		return Issued{}, err
	}
	p.KeyIDs = []string{iss.KeyID}
	if err := p.Validate(); err != nil {
		return Issued{}, err
	}
	name := FileFor(dir, p.Role)
	f, err := readFile(name)
	if err != nil {
		return Issued{}, err
	}
	f.Partners = append(f.Partners, p)
	return iss, writeFile(name, f)
}

// UpdatePartner applies fn to the partner with id in whichever file holds it.
func UpdatePartner(dir, id string, fn func(p *Partner) error) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	for _, name := range files {
		f, err := readFile(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for i := range f.Partners {
			if f.Partners[i].ID != id {
				continue
			}
			if err := fn(&f.Partners[i]); err != nil {
				return err
			}
			if err := f.Partners[i].Validate(); err != nil {
				return err
			}
			return writeFile(name, f)
		}
	}
	return fmt.Errorf("partner %s not found in %s", id, dir)
}

// RotateKey issues a new key for a partner. The old keys stay valid until
// dropOld is used (after the integrator switched), so a rotation never
// interrupts pushes.
func RotateKey(ctx context.Context, dir string, kp keys.Provider, id string, dropOld bool, now time.Time) (Issued, error) {
	var iss Issued
	err := UpdatePartner(dir, id, func(p *Partner) error {
		var err error
		iss, err = issue(ctx, kp, id, now)
		if err != nil {
			return err
		}
		if dropOld {
			p.KeyIDs = nil
		}
		p.KeyIDs = append(p.KeyIDs, iss.KeyID)
		return nil
	})
	return iss, err
}

// SetDisabled disables or re-enables a partner.
func SetDisabled(dir, id string, disabled bool) error {
	return UpdatePartner(dir, id, func(p *Partner) error { p.Disabled = disabled; return nil })
}
