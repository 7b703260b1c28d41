package allowance

import (
	"github.com/shanghai-mca/mzhub/connectors/cardcenter"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/topology"
)

// Topology declares what the data sea family exchanges: it pulls death and
// move records from the data sea (API and SFTP) itself, takes the records
// the front-end processor tables deliver through a dbtable route from the
// bus, and pushes the recipients list (入海); it applies the card
// applications and production progress the cardcenter routes put on the
// bus and asks card statuses (a direct call).
var Topology = topology.Service{
	Name:     "allowance",
	Summary:  "data sea death and move records applied to the elderly allowance (stops, claw-backs, 补发, screening), 入海",
	Consumes: []string{datasea.Topic, cardcenter.Topic},
	Partners: []topology.PartnerLink{
		{Name: "data sea", Partners: []string{datasea.Partner}, Direction: topology.In, Channel: "http", Flows: []string{"death", "migration"}},
		{Name: "data sea", Partners: []string{datasea.Partner}, Direction: topology.In, Channel: "sftp", Flows: []string{"death", "migration"}},
		{Name: "data sea", Partners: []string{datasea.Partner}, Direction: topology.Out, Channel: "http", Flows: []string{"recipients-push"}},
		{Name: "card center", Partners: []string{cardcenter.Partner}, Direction: topology.Out, Channel: "http", Flows: []string{"card-status"}},
	},
}

func init() { topology.RegisterService(Topology) }
