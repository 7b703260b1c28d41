package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
)

// The overview (信息交换流程监管): partners by family × the operations of
// the tender, each cell coloured by the worst of its failure rate, its
// lateness against expectations and schedules, its dead-letter backlog and
// its last reconciliation; above it what needs action now; below it every
// stage of the allowance month (业务处理进程监管).

// familyDef is a partner family and the operations the overview shows
// for it, in the tender's order.
type familyDef struct {
	key      string
	ops      []string
	ids      []string // exact partner ids, shown even before any activity
	prefixes []string // id prefixes of members
}

// families are the overview's partner families, in display order. A
// partner matching none is shown under "other".
var families = []familyDef{
	{key: "bank", ops: []string{"verify", "open", "activate", "unfreeze", "loss", "cancel", "disburse", "deduct", "return"},
		ids: []string{"bank.boc", "bank.bocom", "bank.ceb", "bank.cmb", "bank.spdb", "bank.ccb"}, prefixes: []string{"bank."}},
	{key: "cardcenter", ops: []string{"apply", "produce"}, ids: []string{"cardcenter"}},
	{key: "datasea", ops: []string{"death", "migration", "push_sea"}, ids: []string{"datasea"}},
	{key: "mianshen", ops: []string{"ms_push", "ms_fetch", "ms_confirm", "ms_payout"}, ids: []string{"portal.mianshen"}},
	{key: "joblib", ops: []string{"case_pull", "status_push"}, ids: []string{"portal.joblib"}, prefixes: []string{"joblib"}},
	{key: "verification", ops: []string{"household", "canteen", "abnormal", "crossprov"},
		ids: []string{"hrss", "hpf", "samr", "ministry"}, prefixes: []string{"villagebank."}},
	{key: "funeral", ops: []string{"resources", "burial", "booking"}, prefixes: []string{"funeral.", "cemetery.", "columbarium."}},
	{key: "other"},
}

// familyNames name the families.
var familyNames = map[string][2]string{
	"bank":         {"银行", "Banks"},
	"cardcenter":   {"卡中心", "Card center"},
	"datasea":      {"数据海", "Data sea"},
	"mianshen":     {"免申即享", "No-application benefits"},
	"joblib":       {"一网通办办件库", "Job library"},
	"verification": {"经济状况核对", "Household finance verification"},
	"funeral":      {"殡葬", "Funeral and burial"},
	"other":        {"其他交换方", "Other partners"},
}

// opNames name the operations.
var opNames = map[string][2]string{
	"verify": {"核查", "Verification"}, "open": {"开户", "Opening"}, "activate": {"激活", "Activation"},
	"unfreeze": {"解挂失", "Unfreeze"}, "loss": {"挂失", "Loss report"}, "cancel": {"注销", "Cancellation"},
	"disburse": {"发放", "Disbursement"}, "deduct": {"扣款", "Deduction"}, "return": {"回盘", "Returns"},
	"apply": {"申领", "Applications"}, "produce": {"制卡", "Card production"},
	"death": {"死亡", "Deaths"}, "migration": {"迁移", "Migration"}, "push_sea": {"入海", "Push to the sea"},
	"ms_push": {"推送", "Push"}, "ms_fetch": {"获取", "Fetch"}, "ms_confirm": {"确认", "Confirmation"}, "ms_payout": {"兑付", "Payout"},
	"case_pull": {"办件拉取", "Case pull"}, "status_push": {"状态推送", "Status push"},
	"household": {"核对查询", "Verification queries"}, "canteen": {"食堂比对", "Canteen match"},
	"abnormal": {"经营异常", "Abnormal list"}, "crossprov": {"跨省核对", "Cross-province"},
	"resources": {"资源同步", "Resource sync"}, "burial": {"落葬数据", "Burial records"}, "booking": {"预约", "Booking"},
}

// flowOps place each flow under an operation of the overview. A flow not
// listed gets a column of its own (named by flowNames).
var flowOps = map[string]string{
	"account-verify": "verify", "account-open": "open", "account-activate": "activate", "loss-unfreeze": "unfreeze",
	"loss-report": "loss", "account-cancel": "cancel", "disbursement": "disburse", "allowance": "disburse", "deduction": "deduct",
	"card-apply": "apply", "applications": "apply", "card-status": "apply", "card-production": "produce",
	"death": "death", "migration": "migration", "recipients-push": "push_sea",
	"datasea-files": "death", "datasea-frontend": "death",
	"mianshen-push": "ms_push", "mianshen-fetch": "ms_fetch", "mianshen-confirm": "ms_confirm", "mianshen-payout": "ms_payout",
	"case-pull": "case_pull", "application-fetch": "case_pull", "status-push": "status_push", "mianshen-cases": "ms_fetch",
	"verification": "household", "hrss-nursing": "household", "samr-canteen": "canteen", "samr-registration": "canteen",
	"samr-abnormal": "abnormal", "ministry-request": "crossprov", "ministry-answer": "crossprov", "ministry-authorization": "crossprov",
	"funeral-push": "resources", "resource-sync": "resources", "funeral-api": "resources", "burial-push": "burial", "funeral-booking": "booking",
}

// batchEvents returns the events of batch id that the overview judges (a
// bank batch flow's, of a partner), read once per change of the batch: the
// stage rollup's event count and newest time say whether it changed since
// the last read (a finished month's batch is read once, not on every
// refresh of every screen).
func (c *Console) batchEvents(ctx context.Context, id string, stages []monitor.BatchStage) ([]monitor.Event, error) {
	var n int64
	var last time.Time
	for _, s := range stages {
		if s.BatchID == id {
			n += s.Events
			if s.LastAt.After(last) {
				last = s.LastAt
			}
		}
	}
	fp := strconv.FormatInt(n, 10) + "/" + strconv.FormatInt(last.UnixMilli(), 10)
	c.memoMu.Lock()
	m, ok := c.memo[id]
	c.memoMu.Unlock()
	if ok && m.fp == fp {
		return m.evs, nil
	}
	all, err := c.d.Store.Search(ctx, monitor.Filter{BatchID: id, Limit: batchEventLimit})
	if err != nil {
		return nil, err
	}
	var evs []monitor.Event
	for _, e := range all {
		if op := flowOps[e.Flow]; op != "disburse" && op != "deduct" {
			continue // a stream that happens to carry a batch id
		}
		if e.Partner == "" || e.Partner == "hub" || e.Type == monitor.ExpectationMissed {
			continue // the hub's own steps show in the process view; lateness comes from expectations
		}
		e.Attrs, e.ParentIDs, e.ErrorMessage = nil, nil, "" // kept small: only counts and statuses are read
		evs = append(evs, e)
	}
	c.memoMu.Lock()
	defer c.memoMu.Unlock()
	if c.memo == nil || len(c.memo) >= batchMemoSize {
		c.memo = map[string]batchMemo{}
	}
	c.memo[id] = batchMemo{fp: fp, evs: evs}
	return evs, nil
}

// batchMemo is one batch's judged events and the rollup fingerprint they
// were read at.
type batchMemo struct {
	fp  string
	evs []monitor.Event
}

// batchMemoSize bounds the batches kept (the newest of each bank batch flow).
const batchMemoSize = 8

// batchEventLimit bounds the events read of one batch (a batch has a few
// events per partner file, not per record).
const batchEventLimit = 20000

// healthBand is a health cell's band without the error-rate reasons of a
// batch flow (judged on its batch), grey as green.
func healthBand(h monitor.FlowHealth, batched bool) (monitor.Band, []string) {
	var why []string
	dropped := false
	for _, r := range h.Reasons {
		if batched && (r == "reason_error_rate" || r == "reason_error_rate_24h") {
			dropped = true
			continue
		}
		why = append(why, r)
	}
	switch {
	case len(why) == 0:
		return monitor.Green, nil
	case dropped && h.Band == monitor.Red:
		return monitor.Amber, why // what is left may be the amber part
	}
	return h.Band, why
}

// accountFlow reports whether flow is one of the banks' account
// operations (核查 … 注销), whose result files show in the operation's
// own cell, not in 回盘.
func accountFlow(flow string) bool {
	switch flowOps[flow] {
	case "verify", "open", "activate", "unfreeze", "loss", "cancel":
		return true
	}
	return false
}

// returnStages are the stages of a bank batch that belong to 回盘.
var returnStages = []string{"returns", "reconcile", "failures"}

func familyOf(partner string) *familyDef {
	for i := range families {
		f := &families[i]
		if slices.Contains(f.ids, partner) {
			return f
		}
		for _, p := range f.prefixes {
			if strings.HasPrefix(partner, p) {
				return f
			}
		}
	}
	return &families[len(families)-1]
}

// opOf places an event's partner, flow and stage under an operation.
func opOf(partner, flow, stage string) string {
	if strings.HasPrefix(partner, "bank.") && slices.Contains(returnStages, stage) {
		return "return"
	}
	if op, ok := flowOps[flow]; ok {
		return op
	}
	return "flow:" + flow
}

// opCell is one partner × operation cell of the overview.
type opCell struct {
	Partner, Op string
	// Flow is the first flow seen under it (the cell links to its events).
	Flow string
	// Events and Errors count events (the last 24 hours, or the newest
	// batch of a batch flow); Records and Failed count records.
	Events, Errors  int64
	Records, Failed int64
	// Backlog counts open dead letters, Late missed expectations still
	// missing, LateMet those that arrived late (the last 7 days).
	Backlog, Late, LateMet int
	// Recon is the newest reconciliation's outcome ("" none).
	Recon monitor.Status
	// Batch is the newest batch seen.
	Batch  string
	LastAt time.Time
	Band   monitor.Band
	// Reasons explain a band worse than green (message keys).
	Reasons []string
	// health reasons and bands carried from the health matrix.
	healthBand    monitor.Band
	healthReasons []string
	scheduled     bool
	batched       bool
	// lastStatus is the status of the operation's newest event in its batch.
	lastStatus monitor.Status
	lastTyped  time.Time
	reconAt    time.Time
	// records per event type and channel (the largest is the cell's count:
	// a file's records show on several steps).
	recs map[string][2]int64
}

// Rate is the failure rate of the cell (the worse of events and records).
func (c *opCell) Rate() float64 {
	r := 0.0
	if c.Events > 0 && (!c.batched || c.Records == 0) {
		r = float64(c.Errors) / float64(c.Events)
	}
	if c.Records > 0 {
		r = max(r, float64(c.Failed)/float64(c.Records))
	}
	return r
}

// Href is where the cell leads: its failures, else its events.
func (c *opCell) Href() string {
	q := url.Values{"partner": {c.Partner}}
	if c.Flow != "" {
		q.Set("flow", c.Flow)
	}
	if c.Batch != "" && c.Band != monitor.Green {
		return "search?" + url.Values{"batch": {c.Batch}, "partner": {c.Partner}}.Encode()
	}
	if c.Backlog > 0 {
		return "failures?" + q.Encode()
	}
	return "search?" + q.Encode()
}

// minDenominator is the fewest events or records from which a rate alone
// may turn a cell red; below it any failure is amber (one failure out of
// two is not an alarm, but it is not green either).
const minDenominator = 10

func (c *opCell) judge(th monitor.Thresholds) {
	if c.Events == 0 && c.Records == 0 && c.Backlog == 0 && c.Late == 0 && c.LateMet == 0 && !c.scheduled && c.healthBand != monitor.Red {
		c.Band = monitor.Grey
		return
	}
	c.Band = monitor.Green
	worse := func(b monitor.Band, why string) {
		if !slices.Contains(c.Reasons, why) {
			c.Reasons = append(c.Reasons, why)
		}
		if b == monitor.Red || c.Band == monitor.Green {
			c.Band = b
		}
	}
	if c.batched {
		// A batch operation: its newest batch's records and events.
		rate := 0.0
		if c.Records > 0 {
			rate = float64(c.Failed) / float64(c.Records)
		}
		switch {
		case c.Failed == 0:
		case c.Records < minDenominator:
			worse(monitor.Amber, "reason_failures")
		case th.ErrorRateRed > 0 && rate >= th.ErrorRateRed:
			worse(monitor.Red, "reason_failures")
		case th.ErrorRateAmber > 0 && rate >= th.ErrorRateAmber:
			worse(monitor.Amber, "reason_failures")
		}
		switch {
		case c.lastStatus == monitor.Error:
			worse(monitor.Red, "reason_failing")
		case c.Errors > 0:
			worse(monitor.Amber, "reason_errors_recovered")
		}
		switch c.Recon {
		case monitor.Error:
			worse(monitor.Red, "reason_recon_mismatch")
		case monitor.Warning:
			worse(monitor.Amber, "reason_recon_warning")
		}
	}
	if c.healthBand == monitor.Red || c.healthBand == monitor.Amber {
		for _, r := range c.healthReasons {
			worse(c.healthBand, r)
		}
	}
	if c.Late > 0 {
		worse(monitor.Red, "reason_late")
	} else if c.LateMet > 0 {
		worse(monitor.Amber, "reason_arrived_late")
	}
}

// familyBlock is one family's table.
type familyBlock struct {
	Key  string
	Ops  []string
	Rows []familyRow
	// Band is the worst cell of the family.
	Band monitor.Band
}

type familyRow struct {
	Partner string
	Cells   []*opCell
	// Down tells the partner's circuit is open (partner not reachable).
	Down bool
}

// overviewData is the overview page.
type overviewData struct {
	Families []familyBlock
	Needs    []actionItem
	Process  []processLine
	Counts   map[string]int
}

// overview builds the cells of every family.
// overviewState is what the overview and the big screen are built from.
type overviewState struct {
	blocks []familyBlock
	// down are the partners whose circuit is open.
	down map[string]bool
	// deadLetters counts the open dead letters (from the health matrix).
	deadLetters int
}

func (c *Console) overviewCells(ctx context.Context, now time.Time) (overviewState, error) {
	cells := map[[2]string]*opCell{}
	cell := func(partner, op, flow string) *opCell {
		k := [2]string{partner, op}
		x, ok := cells[k]
		if !ok {
			x = &opCell{Partner: partner, Op: op, Flow: flow}
			cells[k] = x
		}
		if x.Flow == "" {
			x.Flow = flow
		}
		return x
	}
	// Batch flows: the events of the newest batch of each flow (the stage
	// rollup names one partner per stage; the events name every partner).
	stages, err := c.d.Store.Batches(ctx, monitor.BatchQuery{From: now.Add(-45 * 24 * time.Hour), Limit: 5000})
	if err != nil {
		return overviewState{}, err
	}
	// Only the bank batch operations are split by stage and partner; other
	// flows are judged as streams by the health matrix.
	newest := map[string]monitor.BatchStage{}
	for _, s := range stages {
		if op := flowOps[s.Flow]; op != "disburse" && op != "deduct" {
			continue
		}
		if n, ok := newest[s.Flow]; !ok || s.LastAt.After(n.LastAt) {
			newest[s.Flow] = s
		}
	}
	batched := map[[2]string]bool{}
	read := map[string]bool{}
	var batchIDs []string
	for _, n := range newest {
		if !read[n.BatchID] {
			read[n.BatchID] = true
			batchIDs = append(batchIDs, n.BatchID)
		}
	}
	sort.Strings(batchIDs)
	for _, id := range batchIDs {
		evs, err := c.batchEvents(ctx, id, stages)
		if err != nil {
			return overviewState{}, err
		}
		for _, e := range evs {
			op := opOf(e.Partner, e.Flow, e.Stage)
			batched[[2]string{e.Partner, e.Flow}] = true
			x := cell(e.Partner, op, e.Flow)
			x.batched = true
			x.Batch = e.BatchID
			x.Events++
			if e.Status == monitor.Error {
				x.Errors++
			}
			if e.Time.After(x.lastTyped) || x.lastTyped.IsZero() {
				x.lastTyped, x.lastStatus = e.Time, e.Status
			}
			if e.Time.After(x.LastAt) {
				x.LastAt = e.Time
			}
			if e.Records > 0 || e.RecordsFailed > 0 {
				if x.recs == nil {
					x.recs = map[string][2]int64{}
				}
				k := string(e.Type) + "/" + e.Channel
				v := x.recs[k]
				x.recs[k] = [2]int64{v[0] + e.Records, v[1] + e.RecordsFailed}
			}
			if e.Type == monitor.Reconciled && (x.reconAt.IsZero() || !e.Time.Before(x.reconAt)) {
				x.reconAt, x.Recon = e.Time, e.Status
			}
		}
	}
	for _, x := range cells {
		for _, v := range x.recs {
			if v[0] > x.Records || (v[0] == x.Records && v[1] > x.Failed) {
				x.Records, x.Failed = v[0], v[1]
			}
		}
	}
	// Streaming flows: the health matrix (24 h counts, the hour's error
	// rate, staleness against schedules, dead letters).
	health, err := monitor.HealthMatrix(ctx, c.d.Store, now, c.d.Schedules, c.d.Thresholds)
	if err != nil {
		return overviewState{}, err
	}
	deadLetters := 0
	for _, h := range health {
		deadLetters += h.Backlog
		if h.Partner == "" || h.Partner == "hub" {
			continue
		}
		x := cell(h.Partner, opOf(h.Partner, h.Flow, ""), h.Flow)
		if !batched[[2]string{h.Partner, h.Flow}] {
			x.Events += h.H24.Events
			x.Errors += h.H24.Errors
			x.Records += h.H24.Records
			x.Failed += h.H24.RecordsFailed
		}
		x.Backlog += h.Backlog
		x.scheduled = x.scheduled || h.Every > 0
		if h.LastEvent.After(x.LastAt) {
			x.LastAt = h.LastEvent
		}
		hb, _ := healthBand(h, batched[[2]string{h.Partner, h.Flow}])
		x.healthBand = worseBand(x.healthBand, hb)
		for _, r := range h.Reasons {
			// A batch flow's errors are judged on its batch's events.
			if batched[[2]string{h.Partner, h.Flow}] && (r == "reason_error_rate" || r == "reason_error_rate_24h") {
				continue
			}
			if !slices.Contains(x.healthReasons, r) {
				x.healthReasons = append(x.healthReasons, r)
			}
		}
	}
	// Expectations: a file due and not arrived makes its cell late.
	if c.d.Expectations != nil {
		list, err := c.d.Expectations.Between(ctx, now.Add(-7*24*time.Hour), now.Add(time.Millisecond))
		if err != nil {
			return overviewState{}, err
		}
		for _, e := range list {
			if e.State != monitor.ExpectMissed {
				continue
			}
			stage := ""
			if (e.Type == monitor.Downloaded || e.Type == monitor.Fetched || e.Type == monitor.Reconciled) && !accountFlow(e.Flow) {
				stage = "returns"
			}
			x := cell(e.Partner, opOf(e.Partner, e.Flow, stage), e.Flow)
			if e.MetAt.IsZero() {
				x.Late++
			} else {
				x.LateMet++
			}
		}
	}
	down := c.partnersDown(ctx, now)
	// Rows: every known member of a family, plus every partner seen.
	partners := map[string]bool{}
	for _, f := range families {
		for _, id := range f.ids {
			partners[id] = true
		}
	}
	for k := range cells {
		partners[k[0]] = true
	}
	blocks := make([]familyBlock, len(families))
	for i, f := range families {
		blocks[i] = familyBlock{Key: f.key, Ops: slices.Clone(f.ops), Band: monitor.Grey}
	}
	index := func(key string) int {
		for i := range families {
			if families[i].key == key {
				return i
			}
		}
		return len(families) - 1
	}
	ids := make([]string, 0, len(partners))
	for id := range partners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rowsOf := map[string][]string{}
	for _, id := range ids {
		f := familyOf(id)
		rowsOf[f.key] = append(rowsOf[f.key], id)
	}
	for k, x := range cells {
		b := &blocks[index(familyOf(k[0]).key)]
		if !slices.Contains(b.Ops, x.Op) {
			b.Ops = append(b.Ops, x.Op)
		}
	}
	for i := range blocks {
		b := &blocks[i]
		// Known partners keep the tender's order; others follow by id.
		order := rowsOf[b.Key]
		if f := families[i]; len(f.ids) > 0 {
			sort.SliceStable(order, func(a, z int) bool { return rank(f.ids, order[a]) < rank(f.ids, order[z]) })
		}
		for _, id := range order {
			row := familyRow{Partner: id, Down: down[id]}
			for _, op := range b.Ops {
				x, ok := cells[[2]string{id, op}]
				if !ok {
					x = &opCell{Partner: id, Op: op}
				}
				x.judge(c.d.Thresholds)
				if down[id] && x.Events+x.Records > 0 {
					x.Band = monitor.Red
					x.Reasons = append(x.Reasons, "reason_partner_down")
				}
				b.Band = worseBand(b.Band, x.Band)
				row.Cells = append(row.Cells, x)
			}
			b.Rows = append(b.Rows, row)
		}
	}
	out := blocks[:0]
	for _, b := range blocks {
		if len(b.Rows) > 0 {
			out = append(out, b)
		}
	}
	return overviewState{blocks: out, down: down, deadLetters: deadLetters}, nil
}

func rank(list []string, id string) int {
	if i := slices.Index(list, id); i >= 0 {
		return i
	}
	return len(list)
}

// worseBand returns the worse of two bands (grey is the best: nothing to see).
func worseBand(a, b monitor.Band) monitor.Band {
	order := map[monitor.Band]int{monitor.Grey: 0, monitor.Green: 1, monitor.Amber: 2, monitor.Red: 3}
	if order[b] > order[a] {
		return b
	}
	return a
}

// partnersDown finds the partners whose circuit breaker opened and did not
// close again within the last day (the connectors emit a failed event of
// class breaker on every change).
func (c *Console) partnersDown(ctx context.Context, now time.Time) map[string]bool {
	evs, err := c.d.Store.Search(ctx, monitor.Filter{Type: monitor.Failed, ErrorClass: "breaker",
		From: now.Add(-24 * time.Hour), To: now.Add(time.Millisecond), Limit: 500})
	if err != nil {
		c.log.Warn("console: breaker events", "err", err)
		return nil
	}
	down := map[string]bool{}
	seen := map[string]bool{}
	for _, e := range evs { // newest first
		if seen[e.Partner] {
			continue
		}
		seen[e.Partner] = true
		if e.ErrorCode != "breaker_closed" {
			down[e.Partner] = true
		}
	}
	return down
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_overview")
	ctx := r.Context()
	st, err := c.overviewCells(ctx, p.Now)
	if err != nil {
		c.fail(w, "overview", err)
		return
	}
	blocks := st.blocks
	d := overviewData{Families: blocks, Counts: map[string]int{}}
	for _, b := range blocks {
		for _, row := range b.Rows {
			for _, x := range row.Cells {
				d.Counts[string(x.Band)]++
			}
		}
	}
	d.Needs = append(failingCells(p, blocks), c.actionStrip(r, p, st)...)
	d.Process = c.process(r, blocks)
	p.Data = d
	p.Refresh = 60
	c.render(w, p, "overview")
}

// failingCells are the red cells, for the needs-action strip (at most 8,
// each leading to its events).
func failingCells(p *page, blocks []familyBlock) []actionItem {
	var out []actionItem
	for _, b := range blocks {
		for _, row := range b.Rows {
			for _, x := range row.Cells {
				if x.Band == monitor.Red && len(out) < 8 {
					out = append(out, actionItem{Class: "red", Key: "act_failing", Label: p.PartnerText(row.Partner) + " · " + string(p.Op(x.Op)), Href: x.Href()})
				}
			}
		}
	}
	return out
}

// actionStrip lists what needs action now, problems first, each leading to
// the page where it is handled.
func (c *Console) actionStrip(r *http.Request, p *page, st overviewState) []actionItem {
	down := st.down
	ctx := r.Context()
	var out []actionItem
	if c.d.Alerts != nil {
		list, err := c.d.Alerts.List(ctx, monitor.AlertOpen, 500)
		if err != nil {
			c.log.Warn("console: alerts for the overview", "err", err)
		}
		crit, warn, qual := 0, 0, 0
		for _, a := range list {
			switch {
			case a.Rule == "quality":
				qual++
			case a.Severity == monitor.SevCritical:
				crit++
			default:
				warn++
			}
		}
		if crit > 0 {
			out = append(out, actionItem{Class: "red", Key: "act_alerts_critical", Label: strconv.Itoa(crit), Href: "alerts?state=open"})
		}
		if warn > 0 {
			out = append(out, actionItem{Class: "amber", Key: "act_alerts_warning", Label: strconv.Itoa(warn), Href: "alerts?state=open"})
		}
		if qual > 0 {
			out = append(out, actionItem{Class: "amber", Key: "act_quality", Label: strconv.Itoa(qual), Href: "quality"})
		}
	}
	ids := make([]string, 0, len(down))
	for id := range down {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		out = append(out, actionItem{Class: "red", Key: "act_partner_down", Label: p.PartnerText(id), Href: "search?partner=" + url.QueryEscape(id)})
	}
	if c.d.Expectations != nil {
		list, err := c.d.Expectations.Between(ctx, p.Now.Add(-7*24*time.Hour), p.Now.Add(time.Millisecond))
		if err == nil {
			late := 0
			for _, e := range list {
				if e.State == monitor.ExpectMissed && e.MetAt.IsZero() {
					late++
				}
			}
			if late > 0 {
				out = append(out, actionItem{Class: "red", Key: "act_late_files", Label: strconv.Itoa(late), Href: "calendar"})
			}
		}
	}
	if n := st.deadLetters; n > 0 {
		class := "amber"
		if c.d.Thresholds.BacklogRed > 0 && n >= c.d.Thresholds.BacklogRed {
			class = "red"
		}
		out = append(out, actionItem{Class: class, Key: "act_dead_letters", Label: strconv.Itoa(n), Href: "failures"})
	}
	out = append(out, c.needsAction(r)...)
	slices.SortStableFunc(out, func(a, b actionItem) int {
		return strings.Compare(classRank(a.Class), classRank(b.Class))
	})
	return out
}

func classRank(c string) string {
	switch c {
	case "red":
		return "0"
	case "amber":
		return "1"
	}
	return "2"
}

// processStages are the stages of the allowance month, in order (业务处理进程监管).
var processStages = []string{"police", "intake", "validate", "total_check", "confirm", "files", "upload", "returns", "failures", "report", "done"}

// processLine is one cycle's stages.
type processLine struct {
	Kind, Period, Name, Status string
	Steps                      []processStep
}

type processStep struct {
	Stage, Class string
}

// process lays out the newest disbursement and deduction cycles stage by
// stage; the police data step is coloured by the data sea's death and
// migration cells.
func (c *Console) process(r *http.Request, blocks []familyBlock) []processLine {
	if c.d.Cycles == nil {
		return nil
	}
	list, err := c.d.Cycles.List(r.Context(), cycleLimit)
	if err != nil {
		c.log.Warn("console: cycles for the process view", "err", err)
		return nil
	}
	police := monitor.Grey
	for _, b := range blocks {
		for _, row := range b.Rows {
			if row.Partner != "datasea" {
				continue
			}
			for _, x := range row.Cells {
				if x.Op == "death" || x.Op == "migration" {
					police = worseBand(police, x.Band)
				}
			}
		}
	}
	var out []processLine
	seen := map[string]bool{}
	for _, cy := range list {
		if seen[cy.Kind] {
			continue
		}
		seen[cy.Kind] = true
		line := processLine{Kind: cy.Kind, Period: cy.Period, Name: cy.Name, Status: cy.Status}
		at := slices.Index(processStages, cy.Stage)
		for i, s := range processStages {
			cls := "grey"
			switch {
			case s == "police":
				cls = string(police)
			case cy.Status == monitor.CycleDone || (at >= 0 && i < at):
				cls = "green"
			case i == at && cy.Status == monitor.CycleFailed:
				cls = "red"
			case i == at:
				cls = "amber current"
				if cy.Status == monitor.CycleRunning || cy.Status == monitor.CycleQueued {
					cls = "current"
				}
			}
			line.Steps = append(line.Steps, processStep{Stage: s, Class: cls})
		}
		out = append(out, line)
	}
	return out
}
