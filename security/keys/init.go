package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"
)

// Key names and sizes used across the hub.
const (
	FieldPrefix   = "field/"
	BlindName     = "blind"
	AuditName     = "audit"
	SM2SignName   = "sm2/sign"
	PartnerPrefix = "partner/"
	// DisbursementPersonName is the HMAC-SM3 key of the disbursement
	// service's person keys (never rotated without re-keying them).
	DisbursementPersonName = "disbursement-person"

	FieldKeySize = 16 // SM4
	MACKeySize   = 32 // HMAC-SM3
)

// New returns the provider named by kind ("file" with dir, or "env").
func New(kind, dir string) (Provider, error) {
	switch kind {
	case "file":
		if dir == "" {
			return nil, errors.New("keys: file provider needs a directory")
		}
		return NewFile(dir), nil
	case "env":
		return NewEnv(nil), nil
	}
	return nil, fmt.Errorf("keys: unknown provider %q (want file or env)", kind)
}

// Init creates every key the hub needs that does not exist yet (the first
// field key, the blind-index, audit, disbursement person-key and SM2
// signing keys) and returns the names it created. On a read-only provider
// it creates nothing and returns an error listing the missing keys. It is
// what `mzhub keys init` and a demo first run call.
func Init(ctx context.Context, p Provider, now time.Time) ([]string, error) {
	var created, missing []string
	field, err := p.List(ctx, FieldPrefix)
	if err != nil {
		return nil, err
	}
	if len(field) == 0 {
		name := FieldPrefix + NewKID(now)
		if err := p.Put(ctx, name, Random(FieldKeySize)); err != nil {
			if !errors.Is(err, ErrReadOnly) {
				return created, err
			}
			missing = append(missing, FieldPrefix+"<kid>")
		} else {
			created = append(created, name)
		}
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
		_, err := p.Get(ctx, k.name)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			return created, err
		}
		b, err := k.gen()
		if err != nil {
			return created, err
		}
		if err := p.Put(ctx, k.name, b); err != nil {
			if !errors.Is(err, ErrReadOnly) {
				return created, err
			}
			missing = append(missing, k.name)
			continue
		}
		created = append(created, k.name)
	}
	if len(missing) > 0 {
		vars := make([]string, len(missing))
		for i, m := range missing {
			vars[i] = EnvName(m)
		}
		return created, fmt.Errorf("keys: missing %v (%w; set %v)", missing, ErrReadOnly, vars)
	}
	return created, nil
}

// RotateField adds a new field-encryption key, which becomes the active one
// (its kid sorts last). Old keys stay so that existing values still decrypt;
// `mzhub keys reencrypt` moves values to the new key.
func RotateField(ctx context.Context, p Provider, now time.Time) (string, error) {
	existing, err := p.List(ctx, FieldPrefix)
	if err != nil {
		return "", err
	}
	name := FieldPrefix + NewKID(now)
	for len(existing) > 0 && name <= existing[len(existing)-1] {
		// Two rotations in one second, or a clock behind the last key.
		now = now.Add(time.Second)
		name = FieldPrefix + NewKID(now)
	}
	if err := p.Put(ctx, name, Random(FieldKeySize)); err != nil {
		return "", err
	}
	return name, nil
}

// GenerateSM2 returns a new SM2 private key as PKCS#8 DER.
func GenerateSM2() ([]byte, error) {
	k, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: generate sm2: %w", err)
	}
	return smx509.MarshalPKCS8PrivateKey(k)
}

// SM2 loads an SM2 private key stored as PKCS#8 DER under name.
func SM2(ctx context.Context, p Provider, name string) (*sm2.PrivateKey, error) {
	der, err := p.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	k, err := smx509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", name, err)
	}
	sk, ok := k.(*sm2.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keys: %s: not an SM2 key (%T)", name, k)
	}
	return sk, nil
}
