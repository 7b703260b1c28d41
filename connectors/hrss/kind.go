package hrss

import (
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
)

func init() {
	connectors.Register(Spec())
	connectors.Register(FrontEndSpec())
}

// Spec is the "hrss" connector kind: a sink that answers (routes.Replier,
// routes.AnswerChecker) for the verification routes, with the client the
// hub built from its configuration (connectors.Deps.Partners).
func Spec() connectors.Spec {
	return household.SinkSpec("hrss", "social security (人社) for household verification: SOAP 1.1 queries answered on reply_to, in doubt settled by the lookup by key; endpoint and credentials from the hub's verification.hrss", PartnerID)
}
