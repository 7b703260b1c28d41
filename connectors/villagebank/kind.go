package villagebank

import (
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
)

func init() { connectors.Register(Spec()) }

// Spec is the "villagebank" connector kind: a sink that answers (routes.Replier,
// routes.AnswerChecker) for the verification routes, with the client the
// hub built from its configuration (connectors.Deps.Partners).
func Spec() connectors.Spec {
	return household.SinkSpec("villagebank", "the 14 village banks (村镇银行): deposit queries, each to the bank its household-partner header names, answered on reply_to, in doubt settled by the lookup by key; banks from configs/partners/villagebanks.yaml", PartnerPrefix+"*")
}
