package funeral

import "github.com/shanghai-mca/mzhub/topology"

// Topology declares what the funeral service exchanges: the partners push
// to its API and it calls the homes' booking APIs; the bureau's systems read
// its records; every stored change is relayed to TopicChanges. The API
// publishes only through Topology.Guard, so a topic missing here cannot be
// published.
var Topology = topology.Service{
	Name:     "funeral",
	Summary:  "funeral and burial partner API (/partner/v1/), booking, the bureau's read API",
	Produces: []string{TopicChanges},
	Partners: []topology.PartnerLink{
		{Name: "funeral homes, cemeteries, columbaria", Partners: []string{"funeral.*", "cemetery.*", "columbarium.*"},
			Direction: topology.In, Channel: "http", Flows: []string{"funeral-api"}},
		{Name: "funeral homes (booking)", Partners: []string{"funeral.*"},
			Direction: topology.Out, Channel: "http", Flows: []string{"funeral-booking"}},
		{Name: "bureau systems (/internal/funeral/v1/)", Partners: []string{"bureau"},
			Direction: topology.Out, Channel: "http"},
	},
}

func init() { topology.RegisterService(Topology) }
