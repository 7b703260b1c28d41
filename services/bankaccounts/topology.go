package bankaccounts

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the account lifecycle exchanges: it uploads the
// account request files to the banks and fetches their result files, over
// SFTP, itself (no route and no bus topic), like the disbursement service.
var Topology = topology.Service{
	Name:    "bankaccounts",
	Summary: "the banks' account lifecycle: 核查, 开户, 激活, 挂失, 解挂失, 注销 by file, states that screen the allowance lists (开户失败)",
	Partners: []topology.PartnerLink{
		{Name: "banks", Partners: []string{"bank.*"}, Direction: topology.Out, Channel: "sftp", Flows: accountFlows()},
		{Name: "banks", Partners: []string{"bank.*"}, Direction: topology.In, Channel: "sftp", Flows: accountFlows()},
	},
}

func accountFlows() []string {
	return []string{"account-verify", "account-open", "account-activate", "loss-report", "loss-unfreeze", "account-cancel"}
}

func init() { topology.RegisterService(Topology) }
