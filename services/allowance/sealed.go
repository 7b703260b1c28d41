package allowance

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// The sealed ID numbers of applied data-sea records, the sealed accounts of
// 一卡通 cards and the sealed list lines of claw-backs (empty for those found
// before lines were kept), for `mzhub keys reencrypt`.
func init() {
	fieldcrypt.Register(fieldcrypt.Column{Table: "allow_records", Key: []string{"record_id"}, Column: "id_sealed"})
	fieldcrypt.Register(fieldcrypt.Column{Table: "allow_yikatong", Key: []string{"person"}, Column: "account_sealed"})
	fieldcrypt.Register(fieldcrypt.Column{Table: "allow_clawbacks", Key: []string{"person", "month"}, Column: "line_sealed"})
}
