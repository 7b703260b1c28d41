package accounts

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// The sealed TOTP secrets, for `mzhub keys reencrypt`.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "console_totp", Key: []string{"user_id"}, Column: "secret"})
}
