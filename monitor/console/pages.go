package console

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
)

// Alerts is the alert inbox (monitor/alert implements it).
type Alerts interface {
	// List returns alerts in a state ("" for all), newest first.
	List(ctx context.Context, state monitor.AlertState, limit int) ([]monitor.Alert, error)
	// Ack and Resolve act on an alert as user (audited by the implementation).
	Ack(ctx context.Context, id int64, user, note string) error
	Resolve(ctx context.Context, id int64, user, note string) error
}

// Expectations lists expected exchanges (monitor/expect implements it).
type Expectations interface {
	// Between returns expectations due in [from, to), by due time.
	Between(ctx context.Context, from, to time.Time) ([]monitor.Expectation, error)
}

// Quality builds the data-quality report (monitor/quality implements it).
type Quality interface {
	// Scores scores each partner flow over [from, to).
	Scores(ctx context.Context, from, to time.Time) ([]monitor.QualityScore, error)
	// WriteHTML writes a standalone HTML report of scores in language lang ("zh" or "en").
	WriteHTML(w io.Writer, scores []monitor.QualityScore, from, to time.Time, lang string) error
	// WriteCSV writes scores as CSV.
	WriteCSV(w io.Writer, scores []monitor.QualityScore) error
}

type healthRow struct {
	Partner string
	Cells   []*monitor.FlowHealth
}

func (c *Console) health(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_health")
	p.Refresh = 60
	cells, err := monitor.HealthMatrix(r.Context(), c.d.Store, p.Now, c.d.Schedules, c.d.Thresholds)
	if err != nil {
		c.fail(w, "health", err)
		return
	}
	flowSet := map[string]bool{}
	for _, h := range cells {
		flowSet[h.Flow] = true
	}
	flows := make([]string, 0, len(flowSet))
	for f := range flowSet {
		flows = append(flows, f)
	}
	sort.Strings(flows)
	col := map[string]int{}
	for i, f := range flows {
		col[f] = i
	}
	var rows []healthRow
	for i := range cells {
		h := &cells[i]
		if len(rows) == 0 || rows[len(rows)-1].Partner != h.Partner {
			rows = append(rows, healthRow{Partner: h.Partner, Cells: make([]*monitor.FlowHealth, len(flows))})
		}
		rows[len(rows)-1].Cells[col[h.Flow]] = h
	}
	p.Data = struct {
		Flows []string
		Rows  []healthRow
		Needs []actionItem
	}{flows, rows, c.needsAction(r)}
	c.render(w, p, "health")
}

type eventsData struct {
	Q      url.Values
	Events []monitor.Event
	Root   string
	Links  []monitor.Link
}

func (c *Console) search(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_search")
	q := r.URL.Query()
	f := monitor.Filter{
		BatchID: strings.TrimSpace(q.Get("batch")), FileName: strings.TrimSpace(q.Get("file")),
		PartnerRef: strings.TrimSpace(q.Get("ref")), BusinessKey: strings.TrimSpace(q.Get("key")),
		Partner: strings.TrimSpace(q.Get("partner")), Flow: strings.TrimSpace(q.Get("flow")), Limit: 200,
	}
	if id := strings.TrimSpace(q.Get("exchange")); id != "" {
		f.ExchangeIDs = []string{id}
	}
	d := eventsData{Q: q}
	if f.BatchID != "" || f.FileName != "" || f.PartnerRef != "" || f.BusinessKey != "" || f.Partner != "" || f.Flow != "" || len(f.ExchangeIDs) > 0 {
		evs, err := c.d.Store.Search(r.Context(), f)
		if err != nil {
			c.fail(w, "search", err)
			return
		}
		d.Events = evs
	} else {
		// No criteria: the latest 50 events, looking back one hour first
		// and 24 hours only when the hour was quiet (cheaper on big stores).
		for _, back := range []time.Duration{time.Hour, 24 * time.Hour} {
			evs, err := c.d.Store.Search(r.Context(), monitor.Filter{From: p.Now.Add(-back), To: p.Now.Add(time.Millisecond), Limit: 50})
			if err != nil {
				c.fail(w, "search", err)
				return
			}
			d.Events = evs
			if len(evs) == 50 {
				break
			}
		}
	}
	p.Data = d
	c.render(w, p, "search")
}

func (c *Console) exchange(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "lineage")
	id := r.PathValue("id")
	l, err := monitor.TraceLineage(r.Context(), c.d.Store, id, 5)
	if err != nil {
		c.fail(w, "lineage", err)
		return
	}
	p.Data = eventsData{Events: l.Events, Root: id, Links: l.Links}
	c.render(w, p, "exchange")
}

type batchRow struct {
	monitor.BatchStage
	Stuck bool
}

// Outcome says how the stage stands (a message key): a stage with errors
// says so even when its last event marked it done.
func (b batchRow) Outcome() string {
	finished := b.LastType == monitor.StageChanged || b.LastType == monitor.Reconciled || b.LastType == monitor.Dropped
	switch {
	case b.LastStatus == monitor.Error && !finished:
		return "stage_failed"
	case b.Errors > 0 || b.LastStatus == monitor.Error:
		if finished {
			return "stage_errors"
		}
		return "stage_failed"
	case b.RecordsFailed > 0 || b.LastStatus == monitor.Warning:
		if finished {
			return "stage_warnings"
		}
		return "stage_running"
	case finished:
		return "stage_ok"
	}
	return "stage_running"
}

// Class colours the stage's row.
func (b batchRow) Class() string {
	switch b.Outcome() {
	case "stage_failed", "stage_errors":
		return "red"
	case "stage_warnings":
		return "amber"
	}
	if b.Stuck {
		return "amber"
	}
	return ""
}

type batchGroup struct {
	BatchID string
	Stages  []batchRow
}

// batchesData is the batches page: the allowance cycles (when the console
// has them) above the batch pipelines seen in events.
type batchesData struct {
	Groups []batchGroup
	Cycles *cyclesData
}

func (c *Console) batches(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_batches")
	q := r.URL.Query()
	groups, err := c.batchGroups(r, p, q.Get("batch"))
	if err != nil {
		c.fail(w, "batches", err)
		return
	}
	cd, err := c.cyclesFor(r, p, q.Get("batch"), knownProblem(q.Get("problem")), q.Get("batch"), startForm{})
	if err != nil {
		c.fail(w, "cycles", err)
		return
	}
	p.Data = batchesData{Groups: groups, Cycles: cd}
	c.render(w, p, "batches")
}

// batchGroups are the pipelines of batch (all of the last 45 days when
// batch is ""), stage by stage, from the events.
func (c *Console) batchGroups(r *http.Request, p *page, batch string) ([]batchGroup, error) {
	q := monitor.BatchQuery{BatchID: batch}
	if q.BatchID == "" {
		q.From = p.Now.Add(-45 * 24 * time.Hour)
	}
	stages, err := c.d.Store.Batches(r.Context(), q)
	if err != nil {
		return nil, err
	}
	var groups []batchGroup
	idx := map[string]int{}
	for _, s := range stages {
		i, ok := idx[s.BatchID]
		if !ok {
			i = len(groups)
			idx[s.BatchID] = i
			groups = append(groups, batchGroup{BatchID: s.BatchID})
		}
		finished := s.LastType == monitor.StageChanged || s.LastType == monitor.Reconciled || s.LastType == monitor.Dropped
		stuck := !finished && p.Now.Sub(s.LastAt) > c.d.StuckAfter
		groups[i].Stages = append(groups[i].Stages, batchRow{s, stuck})
	}
	for _, g := range groups {
		sort.Slice(g.Stages, func(a, b int) bool { return g.Stages[a].FirstAt.Before(g.Stages[b].FirstAt) })
	}
	return groups, nil
}

type failuresData struct {
	Groups      []monitor.FailureGroup
	DeadLetters []monitor.Event
	Actions     bool
	AskUser     bool
	Q           url.Values
}

func (c *Console) failures(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_failures")
	q := r.URL.Query()
	groups, err := c.d.Store.Failures(r.Context(), p.Now.Add(-24*time.Hour), p.Now.Add(time.Millisecond))
	if err != nil {
		c.fail(w, "failures", err)
		return
	}
	dl, err := c.d.Store.DeadLetters(r.Context(), monitor.Filter{Partner: q.Get("partner"), Flow: q.Get("flow"), ErrorClass: q.Get("class"), Limit: 200})
	if err != nil {
		c.fail(w, "dead letters", err)
		return
	}
	p.Data = failuresData{Groups: groups, DeadLetters: dl, Actions: c.d.Actions != nil && c.d.Auditor != nil && c.canAct(r), AskUser: c.d.User == nil, Q: q}
	c.render(w, p, "failures")
}

// confirmData is the confirmation step of an action: the form posts its
// fields again with confirm=yes.
type confirmData struct {
	// Path is where the form posts, relative to the console.
	Path string
	// Question and Button are message keys.
	Question, Button string
	// Lines show what is about to happen (message key of the label, value).
	Lines []confirmLine
	// Hidden are the request's fields (name, value).
	Hidden []confirmLine
	// Cancel is where the cancel link goes, relative to the console.
	Cancel string
	// AskUser asks the operator's name (no login configured); Reason asks a reason.
	AskUser, Reason bool
}

type confirmLine struct{ Key, Value string }

// deadLetterAction confirms first (GET-like form without confirm=yes), then
// audits and calls the route engine.
func (c *Console) deadLetterAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if action != "retry" && action != "replay" && action != "drop" {
		c.notFound(w, r)
		return
	}
	if c.d.Actions == nil || c.d.Auditor == nil {
		http.Error(w, "actions are not configured", http.StatusNotImplemented)
		return
	}
	if !c.canAct(r) {
		c.refuse(w, r, "monitor.dead_letter."+action, r.FormValue("exchange"))
		return
	}
	id := r.FormValue("exchange")
	if id == "" {
		http.Error(w, "exchange required", http.StatusBadRequest)
		return
	}
	p := c.newPage(w, r, "confirm_action")
	user, ok := c.actor(r)
	if r.FormValue("confirm") != "yes" || !ok || (action == "drop" && strings.TrimSpace(r.FormValue("reason")) == "") {
		if r.FormValue("confirm") == "yes" {
			p.Flash = p.T("operator_required")
		}
		p.Data = confirmData{Path: "failures/" + action, Question: "dl_confirm_" + action, Button: action, Cancel: "failures",
			Lines:  []confirmLine{{"exchange_id", mask(id)}},
			Hidden: []confirmLine{{"exchange", id}}, AskUser: c.d.User == nil, Reason: action == "drop"}
		c.render(w, p, "confirm")
		return
	}
	reason := strings.TrimSpace(r.FormValue("reason"))
	ctx := r.Context()
	var err error
	switch action {
	case "retry":
		err = c.d.Actions.Retry(ctx, id, user)
	case "replay":
		err = c.d.Actions.Replay(ctx, id, user)
	case "drop":
		err = c.d.Actions.Drop(ctx, id, user, reason)
	}
	// Audited with what happened: an action that failed is recorded as
	// failed, not as done.
	rec := audit.Record{Actor: audit.UserActor(user), Action: "monitor.dead_letter." + action, Object: id, Outcome: audit.OutcomeSuccess, Detail: mask(reason)}
	if err != nil {
		rec.Outcome, rec.Detail = audit.OutcomeFailure, strings.TrimSpace(mask(reason)+" error: "+mask(err.Error()))
	}
	if _, aerr := c.d.Auditor.Append(context.WithoutCancel(ctx), rec); aerr != nil {
		c.log.Error("console: audit of a dead-letter action failed", "action", action, "exchange", id, "err", aerr)
	}
	flash := p.T("done") + ": " + p.T(action) + " " + mask(id)
	if err != nil {
		c.log.Warn("console: dead-letter action", "action", action, "exchange", id, "err", err)
		flash = p.T("action_failed") + ": " + mask(err.Error())
	}
	http.Redirect(w, r, p.Base+"failures?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

func (c *Console) canAct(r *http.Request) bool { return c.d.CanAct == nil || c.d.CanAct(r) }

// refuse answers 403 to a user whose role may not act and audits the
// refusal (an auditor trying a replay is a denied action, not nothing).
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, action, object string) {
	if c.d.Auditor != nil {
		user, _ := c.actor(r)
		if user == "" {
			user = "unknown"
		}
		if _, err := c.d.Auditor.Append(context.WithoutCancel(r.Context()), audit.Record{Actor: audit.UserActor(user), Action: action,
			Object: mask(object), Outcome: audit.OutcomeDenied, Detail: "role may not act"}); err != nil {
			c.log.Error("console: audit of a refusal failed", "action", action, "err", err)
		}
	}
	http.Error(w, "your role may not act", http.StatusForbidden)
}

// actor names who acts: the session's user, or the self-declared operator
// when no login is configured.
func (c *Console) actor(r *http.Request) (string, bool) {
	if c.d.User != nil {
		u := c.d.User(r)
		return u, u != ""
	}
	u := strings.TrimSpace(r.FormValue("operator"))
	if u == "" {
		return "", false
	}
	return "self-declared:" + u, true
}

func (c *Console) alerts(w http.ResponseWriter, r *http.Request) {
	if c.d.Alerts == nil {
		c.notFound(w, r)
		return
	}
	p := c.newPage(w, r, "nav_alerts")
	state := monitor.AlertState(r.URL.Query().Get("state"))
	list, err := c.d.Alerts.List(r.Context(), state, 500)
	if err != nil {
		c.fail(w, "alerts", err)
		return
	}
	p.Data = struct {
		Alerts  []monitor.Alert
		State   monitor.AlertState
		AskUser bool
		CanAct  bool
	}{list, state, c.d.User == nil, c.canAct(r)}
	c.render(w, p, "alerts")
}

func (c *Console) alertAction(w http.ResponseWriter, r *http.Request) {
	if c.d.Alerts == nil {
		c.notFound(w, r)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	action := r.PathValue("action")
	if err != nil || (action != "ack" && action != "resolve") {
		c.notFound(w, r)
		return
	}
	if !c.canAct(r) {
		c.refuse(w, r, "monitor.alert."+action, r.PathValue("id"))
		return
	}
	p := c.newPage(w, r, "nav_alerts")
	user, ok := c.actor(r)
	if !ok {
		http.Redirect(w, r, p.Base+"alerts?flash="+url.QueryEscape(p.T("operator_required")), http.StatusSeeOther)
		return
	}
	note := strings.TrimSpace(r.FormValue("note"))
	if action == "ack" {
		err = c.d.Alerts.Ack(r.Context(), id, user, note)
	} else {
		err = c.d.Alerts.Resolve(r.Context(), id, user, note)
	}
	flash := p.T("done")
	if err != nil {
		flash = p.T("action_failed") + ": " + mask(err.Error())
	}
	http.Redirect(w, r, p.Base+"alerts?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

type calendarDay struct {
	Day   time.Time
	Items []monitor.Expectation
}

func (c *Console) calendar(w http.ResponseWriter, r *http.Request) {
	if c.d.Expectations == nil {
		c.notFound(w, r)
		return
	}
	p := c.newPage(w, r, "nav_calendar")
	from := startOfDay(p.Now).AddDate(0, 0, -7)
	to := from.AddDate(0, 0, 28)
	list, err := c.d.Expectations.Between(r.Context(), from, to)
	if err != nil {
		c.fail(w, "calendar", err)
		return
	}
	var days []calendarDay
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		days = append(days, calendarDay{Day: d})
	}
	for _, e := range list {
		i := int(startOfDay(e.Due).Sub(from).Hours() / 24)
		if i >= 0 && i < len(days) {
			days[i].Items = append(days[i].Items, e)
		}
	}
	p.Data = struct {
		Days  []calendarDay
		Today time.Time
	}{days, startOfDay(p.Now)}
	c.render(w, p, "calendar")
}
