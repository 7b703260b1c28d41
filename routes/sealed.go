package routes

import (
	"encoding/json"
	"fmt"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
)

// The sealed bodies of dead letters (the message is stored as JSON, its
// Body sealed when bus.HeaderSealed is set), for `mzhub keys reencrypt`.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "routes_dead_letters", Key: []string{"id"}, Column: "msg", Codec: deadLetterBody{}})
}

type deadLetterBody struct{}

// parts returns the stored message's fields and its sealed body (nil when
// the body is not sealed).
func (deadLetterBody) parts(v []byte) (map[string]json.RawMessage, []byte, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, nil, fmt.Errorf("routes: dead letter: %w", err)
	}
	var h map[string]string
	if raw, ok := f["Headers"]; ok {
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, nil, fmt.Errorf("routes: dead letter headers: %w", err)
		}
	}
	if h[bus.HeaderSealed] == "" {
		return f, nil, nil
	}
	var body []byte
	if err := json.Unmarshal(f["Body"], &body); err != nil {
		return nil, nil, fmt.Errorf("routes: dead letter body: %w", err)
	}
	if fieldcrypt.SealedKID(body) == "" {
		return nil, nil, fmt.Errorf("routes: dead letter: %w: marked sealed, not an envelope", fieldcrypt.ErrCiphertext)
	}
	return f, body, nil
}

func (d deadLetterBody) KIDs(_, v []byte) ([]string, error) {
	_, body, err := d.parts(v)
	if err != nil || body == nil {
		return nil, err
	}
	return []string{fieldcrypt.SealedKID(body)}, nil
}

func (d deadLetterBody) Open(r *fieldcrypt.Ring, _, v []byte) error {
	_, body, err := d.parts(v)
	if err == nil && body != nil {
		_, err = r.Open(body)
	}
	return err
}

func (d deadLetterBody) Reseal(r *fieldcrypt.Ring, _, v []byte) ([]byte, error) {
	f, body, err := d.parts(v)
	if err != nil || body == nil {
		return v, err
	}
	nb, _, err := r.Reseal(body)
	if err != nil {
		return nil, err
	}
	if f["Body"], err = json.Marshal(nb); err != nil {
		return nil, err
	}
	return json.Marshal(f)
}
