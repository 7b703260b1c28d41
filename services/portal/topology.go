package portal

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the portal service exchanges: it calls the
// one-stop portal's job library and 免申即享 interfaces itself over signed
// HTTP (no route and no bus topic), and takes the business system's
// registers and status files from its inbox.
var Topology = topology.Service{
	Name:    "portal",
	Summary: "one-stop portal: applications and status nodes (job library), 免申即享 push, confirmation and payout",
	Partners: []topology.PartnerLink{
		{Name: "job library", Partners: []string{PartnerJobLib}, Direction: topology.In, Channel: "http", Flows: []string{FlowFetch}},
		{Name: "job library", Partners: []string{PartnerJobLib}, Direction: topology.Out, Channel: "http", Flows: []string{FlowStatus}},
		{Name: "no-application benefits", Partners: []string{PartnerMianshen}, Direction: topology.In, Channel: "http", Flows: []string{FlowCases}},
		{Name: "business system (files)", Partners: []string{PartnerBusiness}, Direction: topology.In, Channel: "file", Flows: []string{FlowInbox}},
		{Name: "no-application benefits", Partners: []string{PartnerMianshen}, Direction: topology.Out, Channel: "http", Flows: []string{FlowPush, FlowConfirm, FlowPayout}},
	},
}

func init() { topology.RegisterService(Topology) }
