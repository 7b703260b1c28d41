package console

import (
	"context"
	"fmt"
	"html"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/topology"
)

// Topology gives the topology page the running hub's model with live
// numbers (topology.Running implements it).
type Topology interface {
	// View builds the model of the running configuration and measures it.
	View(ctx context.Context) (topology.View, error)
}

// topologyData is what topology.tmpl renders.
type topologyData struct {
	View    topology.View
	Diagram string
	Edges   []topologyEdge
}

// topologyEdge is a table row.
type topologyEdge struct {
	topology.EdgeView
	From, To string
	Rate     string
	Class    string
}

func (c *Console) topology(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_topology")
	v, err := c.d.Topology.View(r.Context())
	if err != nil {
		c.fail(w, "topology", err)
		return
	}
	d := topologyData{View: v, Diagram: diagram(p, v)}
	for _, e := range v.Edges {
		d.Edges = append(d.Edges, topologyEdge{EdgeView: e, From: nodeLabel(p, e.FromNode), To: nodeLabel(p, e.ToNode),
			Rate: rate(p, e, v), Class: edgeClass(e)})
	}
	p.Data = d
	c.render(w, p, "topology")
}

// nodeLabel names a node with its kind, in the page's language.
func nodeLabel(p *page, n topology.Node) string {
	return p.T("kind_"+string(n.Kind)) + " " + nodeName(p, n)
}

// nodeName is a partner node's name from the dictionary, any other node's id.
func nodeName(p *page, n topology.Node) string {
	if n.Kind == topology.KindPartner {
		return p.PartnerText(n.ID)
	}
	return n.ID
}

// rate formats an edge's rate per minute ("—" when not metered or not yet known).
func rate(p *page, e topology.EdgeView, v topology.View) string {
	switch {
	case !e.Metered:
		return p.T("not_metered")
	case v.Span == 0:
		return "—"
	case e.PerMinute >= 10 || e.PerMinute == 0:
		return strconv.FormatFloat(math.Round(e.PerMinute), 'f', 0, 64)
	}
	return strings.TrimSuffix(strconv.FormatFloat(e.PerMinute, 'f', 1, 64), ".0")
}

func edgeClass(e topology.EdgeView) string {
	switch {
	case !e.Metered:
		return "unmetered"
	case e.Errors > 0:
		return "err"
	case e.PerMinute > 0:
		return "busy"
	}
	return "idle"
}

// Layout of the diagram.
const (
	topoColW, topoNodeW, topoNodeH, topoRowH, topoPad = 300.0, 190.0, 38.0, 58.0, 16.0
)

// diagram draws the model left to right: partners that send, the routes
// and services taking their messages, the topics, the routes and services
// reading them, and the partners and systems receiving. Each node sits in
// the column of its longest path from a source; receiving partners and
// external systems sit in the last column. Edges carry their rate and
// error count.
func diagram(p *page, v topology.View) string {
	if len(v.Nodes) == 0 {
		return ""
	}
	col := columns(v)
	maxCol := 0
	for _, c := range col {
		maxCol = max(maxCol, c)
	}
	rows := make([]int, maxCol+1)
	type pos struct{ x, y float64 }
	at := map[string]pos{}
	for _, k := range order(v, col, maxCol) {
		c := col[k]
		at[k] = pos{topoPad + float64(c)*topoColW, topoPad + 18 + float64(rows[c])*topoRowH}
		rows[c]++
	}
	maxRows := 0
	for _, r := range rows {
		maxRows = max(maxRows, r)
	}
	width := topoPad*2 + float64(maxCol)*topoColW + topoNodeW
	height := topoPad*2 + 18 + float64(maxRows)*topoRowH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="topology" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		width, height, width, height, html.EscapeString(p.T("nav_topology")))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#52606d"/></marker></defs>`)
	for _, e := range v.Edges {
		a, z := at[e.From], at[e.To]
		x1, y1 := a.x+topoNodeW, a.y+topoNodeH/2
		x2, y2 := z.x, z.y+topoNodeH/2
		if x2 <= x1 { // backwards: leave and enter on the same side
			x2 = z.x + topoNodeW
		}
		dx := math.Max(40, math.Abs(x2-x1)/2)
		cls := edgeClass(e)
		fmt.Fprintf(&b, `<path class="edge %s" d="M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f" marker-end="url(#arrow)"><title>%s → %s</title></path>`,
			cls, x1, y1, x1+dx, y1, x2-dx, y2, x2, y2, html.EscapeString(nodeLabel(p, e.FromNode)), html.EscapeString(nodeLabel(p, e.ToNode)))
		label := rate(p, e, v)
		if e.Metered && v.Span > 0 {
			label += p.T("per_min")
			if e.Errors > 0 {
				label += " · " + strconv.FormatFloat(e.Errors, 'f', 0, 64) + p.T("errors_short")
			}
		}
		fmt.Fprintf(&b, `<text class="edge-label %s" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, cls, (x1+x2)/2, (y1+y2)/2-4, html.EscapeString(label))
	}
	for _, n := range v.Nodes {
		a := at[n.Key()]
		id := nodeName(p, n)
		if r := []rune(id); len(r) > 26 {
			id = string(r[:25]) + "…"
		}
		fmt.Fprintf(&b, `<g class="node %s"><title>%s</title><rect x="%.1f" y="%.1f" width="%.0f" height="%.0f" rx="6"/>`,
			n.Kind, html.EscapeString(nodeLabel(p, n)+detail(n)), a.x, a.y, topoNodeW, topoNodeH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="kind">%s</text><text x="%.1f" y="%.1f">%s</text></g>`,
			a.x+8, a.y+14, html.EscapeString(p.T("kind_"+string(n.Kind))), a.x+8, a.y+30, html.EscapeString(id))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func detail(n topology.Node) string {
	if n.Detail == "" {
		return ""
	}
	return " — " + n.Detail
}

// columns places each node in the column of its longest path from a node
// without incoming edges (cycles are cut after len(nodes) rounds);
// receiving partners and external systems go to the last column.
func columns(v topology.View) map[string]int {
	col := map[string]int{}
	for _, n := range v.Nodes {
		col[n.Key()] = 0
	}
	for range v.Nodes {
		changed := false
		for _, e := range v.Edges {
			if c := col[e.From] + 1; c > col[e.To] && c < len(v.Nodes) {
				col[e.To], changed = c, true
			}
		}
		if !changed {
			break
		}
	}
	last := 0
	for _, c := range col {
		last = max(last, c)
	}
	out, in := map[string]bool{}, map[string]bool{}
	for _, e := range v.Edges {
		out[e.From], in[e.To] = true, true
	}
	for _, n := range v.Nodes {
		if (n.Kind == topology.KindPartner || n.Kind == topology.KindExternal) && !out[n.Key()] {
			col[n.Key()] = last
		}
	}
	// A route or service nothing feeds (it works on its own schedule)
	// sits just before what it feeds, not at the far left.
	for _, n := range v.Nodes {
		k := n.Key()
		if in[k] || !out[k] || n.Kind == topology.KindPartner || n.Kind == topology.KindExternal {
			continue
		}
		next := last + 1
		for _, e := range v.Edges {
			if e.From == k {
				next = min(next, col[e.To])
			}
		}
		if next-1 > col[k] {
			col[k] = next - 1
		}
	}
	// Keep the columns dense (a column emptied by the move closes up).
	used := map[int]bool{}
	for _, c := range col {
		used[c] = true
	}
	var cs []int
	for c := range used {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	dense := map[int]int{}
	for i, c := range cs {
		dense[c] = i
	}
	for k, c := range col {
		col[k] = dense[c]
	}
	return col
}

// order lists the node keys column by column: the first column by kind
// and id, each next one by the mean row of the nodes feeding it (fewer
// crossings), nodes fed by none last.
func order(v topology.View, col map[string]int, maxCol int) []string {
	row := map[string]int{}
	preds := map[string][]string{}
	for _, e := range v.Edges {
		preds[e.To] = append(preds[e.To], e.From)
	}
	var out []string
	for c := 0; c <= maxCol; c++ {
		type item struct {
			key  string
			mean float64
			seq  int
		}
		var items []item
		for i, n := range v.Nodes { // sorted by kind and id
			k := n.Key()
			if col[k] != c {
				continue
			}
			mean, cnt := 0.0, 0
			for _, p := range preds[k] {
				if r, ok := row[p]; ok && col[p] < c {
					mean += float64(r)
					cnt++
				}
			}
			if cnt == 0 {
				mean = math.Inf(1)
			} else {
				mean /= float64(cnt)
			}
			items = append(items, item{k, mean, i})
		}
		sort.SliceStable(items, func(i, j int) bool {
			if items[i].mean != items[j].mean {
				return items[i].mean < items[j].mean
			}
			return items[i].seq < items[j].seq
		})
		for i, it := range items {
			row[it.key] = i
			out = append(out, it.key)
		}
	}
	return out
}
