package portal

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the portal service exchanges: the routes of
// configs/routes/portal*.yaml pull the job library's applications and the
// 免申即享 cases onto portal.applications and portal.cases, which the
// service consumes; it publishes each outbox batch (status nodes, pushes,
// confirmations, payouts) on portal.out.<op>, where the routes deliver it
// and answer on portal.answers. It takes the business system's registers
// and status files from its inbox.
var Topology = topology.Service{
	Name:     "portal",
	Summary:  "one-stop portal: applications and status nodes (job library), 免申即享 push, confirmation and payout, through the portal routes",
	Produces: []string{TopicOutNodes, TopicOutPush, TopicOutConfirm, TopicOutPayout},
	Consumes: []string{TopicApplications, TopicCases, TopicAnswers},
	Partners: []topology.PartnerLink{
		{Name: "business system (files)", Partners: []string{PartnerBusiness}, Direction: topology.In, Channel: "file", Flows: []string{FlowInbox}},
	},
}

func init() { topology.RegisterService(Topology) }
