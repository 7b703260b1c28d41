package allowance

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// The sealed ID numbers of applied data-sea records, for `mzhub keys
// reencrypt`.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "allow_records", Key: []string{"record_id"}, Column: "id_sealed"})
}
