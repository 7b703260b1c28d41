package verification

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// The sealed requests and answers (they hold ID numbers), for `mzhub keys
// reencrypt`; those stored without a sealer are JSON and stay.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "verif_requests", Key: []string{"id"}, Column: "body", Format: fieldcrypt.Envelope})
	fieldcrypt.Register(fieldcrypt.Column{Table: "verif_calls", Key: []string{"id"}, Column: "answer", Format: fieldcrypt.Envelope})
}
