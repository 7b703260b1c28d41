package samr

import (
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
)

func init() { connectors.Register(Spec()) }

// Spec is the "samr" connector kind: a sink that answers (routes.Replier,
// routes.AnswerChecker) for the verification routes, with the client the
// hub built from its configuration (connectors.Deps.Partners).
func Spec() connectors.Spec {
	return household.SinkSpec("samr", "market supervision (市场监管) for household verification: REST queries answered on reply_to, in doubt settled by the lookup by key; endpoint from the hub's verification.samr", PartnerID)
}
