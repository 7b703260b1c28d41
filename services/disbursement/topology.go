package disbursement

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the disbursement service exchanges: it uploads
// the allowance and deduction files to the banks and fetches their return
// files, over SFTP, itself (no route and no bus topic).
var Topology = topology.Service{
	Name:    "disbursement",
	Summary: "monthly allowance and quarterly deduction cycles with the banks, reconciliation",
	Partners: []topology.PartnerLink{
		{Name: "banks", Partners: []string{"bank.*"}, Direction: topology.Out, Channel: "sftp", Flows: []string{"disbursement", "deduction"}},
		{Name: "banks", Partners: []string{"bank.*"}, Direction: topology.In, Channel: "sftp", Flows: []string{"disbursement", "deduction"}},
	},
}

func init() { topology.RegisterService(Topology) }
