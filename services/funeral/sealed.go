package funeral

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// What the funeral service stores sealed under the field keys, for `mzhub
// keys reencrypt`: partner secrets, record bodies (deceased persons' names,
// contacts) and the answers remembered under an Idempotency-Key. Bodies
// stored before sealing was on are JSON and stay as they are.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "funeral_partner_keys", Key: []string{"key_id"}, Column: "secret"})
	fieldcrypt.Register(fieldcrypt.Column{Table: "funeral_records", Key: []string{"partner_id", "kind", "record_id"}, Column: "data"})
	fieldcrypt.Register(fieldcrypt.Column{Table: "funeral_idempotency", Key: []string{"partner_id", "idem_key"}, Column: "body"})
}
