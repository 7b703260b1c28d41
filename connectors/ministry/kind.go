package ministry

import (
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
)

func init() { connectors.Register(Spec()) }

// Spec is the "ministry" connector kind: a sink that answers (routes.Replier,
// routes.AnswerChecker) for the verification routes, with the client the
// hub built from its configuration (connectors.Deps.Partners).
func Spec() connectors.Spec {
	return household.SinkSpec("ministry", "the ministry's data security exchange platform (部级数据安全交换平台): cross-province queries accepted (pending) and polled by key, answers on reply_to; endpoint from the hub's verification.ministry", PartnerID)
}
