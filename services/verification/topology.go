package verification

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the verification service exchanges: the bureau's
// verification centre submits households and reads results; the service
// calls social security and the housing fund (SOAP), market supervision,
// the 14 village banks and the ministry platform itself (no route and no
// bus topic), and answers other provinces' requests through the platform.
var Topology = topology.Service{
	Name:    "verification",
	Summary: "household economic-status verification (居民经济状况核对): fan-out to in-city partners, village banks and other provinces, data quality",
	Partners: []topology.PartnerLink{
		{Name: "verification centre (/internal/verification/v1/)", Partners: []string{"verification-centre"}, Direction: topology.In, Channel: "http", Flows: []string{FlowVerification}},
		{Name: "social security, housing fund", Partners: []string{"hrss", "hpf"}, Direction: topology.Out, Channel: "soap", Flows: []string{FlowVerification}},
		{Name: "market supervision", Partners: []string{"samr"}, Direction: topology.Out, Channel: "http", Flows: []string{FlowVerification}},
		{Name: "village banks", Partners: []string{"villagebank.*"}, Direction: topology.Out, Channel: "http", Flows: []string{FlowVerification, FlowMinistryAnswer}},
		{Name: "ministry platform (other provinces)", Partners: []string{"ministry"}, Direction: topology.Out, Channel: "http", Flows: []string{FlowMinistryRequest}},
		{Name: "ministry platform (requests from other provinces)", Partners: []string{"ministry"}, Direction: topology.In, Channel: "http", Flows: []string{FlowMinistryAnswer}},
	},
}

func init() { topology.RegisterService(Topology) }
