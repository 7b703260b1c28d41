package verification

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the verification service exchanges: the bureau's
// verification centre submits households and reads results; the service
// publishes each call on its partner's ask topic, where the routes of
// configs/routes/verification*.yaml deliver it to social security and the
// housing fund (SOAP), market supervision, the 14 village banks and the
// ministry platform, and publish the answers back. Other provinces'
// requests come the same way: a route pulls them from the platform onto
// verification.inbound, and the answers go back through a route that
// returns them and publishes the outcome on verification.returned.
var Topology = topology.Service{
	Name:     "verification",
	Summary:  "household economic-status verification (居民经济状况核对): fan-out to in-city partners, village banks and other provinces through routes, data quality",
	Produces: []string{TopicAskHRSS, TopicAskHPF, TopicAskSAMR, TopicAskVillageBank, TopicAskMinistry, TopicReturn},
	Consumes: []string{TopicAnswers, TopicInbound, TopicReturned},
	Partners: []topology.PartnerLink{
		{Name: "verification centre (/internal/verification/v1/)", Partners: []string{"verification-centre"}, Direction: topology.In, Channel: "http", Flows: []string{FlowVerification}},
	},
}

func init() { topology.RegisterService(Topology) }
