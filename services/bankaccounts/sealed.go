package bankaccounts

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// The sealed ID numbers, names and accounts of the account requests and
// states, for `mzhub keys reencrypt` (empty accounts are left alone).
func init() {
	for _, c := range []string{"id_sealed", "name_sealed", "account_sealed"} {
		fieldcrypt.Register(fieldcrypt.Column{Table: "acct_requests", Key: []string{"ref"}, Column: c})
	}
	fieldcrypt.Register(fieldcrypt.Column{Table: "acct_state", Key: []string{"person", "bank"}, Column: "account_sealed"})
}
