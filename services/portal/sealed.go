package portal

import "github.com/shanghai-mca/mzhub/security/fieldcrypt"

// What the portal service stores sealed, for `mzhub keys reencrypt`: ID
// numbers and names (Ring.Encrypt) and the no-application pushes waiting in
// the outbox (Ring.Seal; the outbox's other bodies are JSON and stay).
func init() {
	for _, c := range []fieldcrypt.Column{
		{Table: "portal_applications", Key: []string{"application_id"}, Column: "person_sealed"},
		{Table: "portal_eligible", Key: []string{"item_code", "person_key"}, Column: "person_sealed"},
		{Table: "portal_eligible", Key: []string{"item_code", "person_key"}, Column: "name_sealed"},
		{Table: "portal_cases", Key: []string{"case_id"}, Column: "person_sealed"},
		{Table: "portal_outbox", Key: []string{"id"}, Column: "body", Format: fieldcrypt.Envelope},
	} {
		fieldcrypt.Register(c)
	}
}
