package local

import (
	"encoding/json"
	"fmt"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
)

// The bodies of messages waiting on the local bus, sealed by bus.Sealed,
// for `mzhub keys reencrypt`. Only a message whose headers carry
// bus.HeaderSealed has a sealed body; the others were published before
// sealing was on and stay as they are.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "bus_messages", Key: []string{"id"}, Column: "body",
		Binary: true, Guard: "headers", Codec: sealedBody{}})
}

type sealedBody struct{}

func (sealedBody) KIDs(headers, body []byte) ([]string, error) {
	if len(headers) == 0 {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal(headers, &h); err != nil {
		return nil, fmt.Errorf("bus: headers: %w", err)
	}
	if h[bus.HeaderSealed] == "" {
		return nil, nil
	}
	kid := fieldcrypt.SealedKID(body)
	if kid == "" {
		return nil, fmt.Errorf("bus: %w: marked sealed, not an envelope", fieldcrypt.ErrCiphertext)
	}
	return []string{kid}, nil
}

func (b sealedBody) Open(r *fieldcrypt.Ring, headers, body []byte) error {
	kids, err := b.KIDs(headers, body)
	if err == nil && len(kids) > 0 {
		_, err = r.Open(body)
	}
	return err
}

func (sealedBody) Reseal(r *fieldcrypt.Ring, _, body []byte) ([]byte, error) {
	out, _, err := r.Reseal(body)
	return out, err
}
