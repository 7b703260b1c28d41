package console

import (
	"cmp"
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Cycles are the allowance cycles (monthly disbursement, quarterly
// deduction) that operators drive from the batches page; the hub adapts
// services/disbursement. user is the logged-in console user (or the
// self-declared operator when no login is configured). The implementation
// audits every request under user's name, and refuses one with an error
// wrapping one of monitor's cycle sentinels (monitor.ErrSameConfirmer, ...)
// so that the console can say why.
type Cycles interface {
	// List returns the newest cycles first, at most limit.
	List(ctx context.Context, limit int) ([]monitor.Cycle, error)
	// Status tells where one cycle stands, stage by stage.
	Status(ctx context.Context, kind, period string) (*monitor.CycleStatus, error)
	// Inbox lists the list files waiting to be taken in.
	Inbox(ctx context.Context) (monitor.CycleInbox, error)
	// Submit starts a cycle with a list, records its letter total, or
	// resumes it after a failure, and queues it for the cycle runner.
	Submit(ctx context.Context, req monitor.CycleRequest, user string) (monitor.Cycle, error)
	// Confirm confirms a cycle at level (monitor.LevelDistrict, then
	// monitor.LevelCity by another user).
	Confirm(ctx context.Context, kind, period, level, user string) error
}

// cycleKinds are the kinds of cycle the console starts.
var cycleKinds = []string{"disbursement", "deduction"}

// cycleLimit is how many cycles the batches page lists (two years of
// monthly disbursements and their quarterly deductions).
const cycleLimit = 32

type cycleRow struct {
	monitor.Cycle
	District, City *monitor.CycleConfirmation
}

// Class colours a cycle's row: red failed, amber waiting for people,
// green done.
func (r cycleRow) Class() string {
	switch r.Status {
	case monitor.CycleFailed:
		return "red"
	case monitor.CycleAwaitingConfirmation, monitor.CycleAwaitingLetterTotal:
		return "amber"
	case monitor.CycleDone:
		return "green"
	}
	return ""
}

// Next names what the cycle waits for (a message key), "" when nobody
// needs to act.
func (r cycleRow) Next() string {
	switch r.Status {
	case monitor.CycleFailed:
		return "cycle_next_resume"
	case monitor.CycleAwaitingLetterTotal:
		return "cycle_next_letter"
	case monitor.CycleAwaitingConfirmation:
		if r.District == nil {
			return "cycle_next_district"
		}
		return "cycle_next_city"
	}
	return ""
}

// WantsLetterTotal tells whether the row offers the letter-total form: the
// cycle waits for it, or failed its total check (a wrong total entered).
func (r cycleRow) WantsLetterTotal() bool {
	return r.Status == monitor.CycleAwaitingLetterTotal || r.Status == monitor.CycleFailed && r.Stage == "total_check"
}

func rowOf(cy monitor.Cycle) cycleRow {
	r := cycleRow{Cycle: cy}
	if x, ok := cy.Confirmed(monitor.LevelDistrict); ok {
		r.District = &x
	}
	if x, ok := cy.Confirmed(monitor.LevelCity); ok {
		r.City = &x
	}
	return r
}

// startForm is the start form's values, refilled after a form error.
type startForm struct {
	Kind, Period, List, LetterTotal string
}

type cyclesData struct {
	Rows     []cycleRow
	Selected *monitor.CycleStatus
	Inbox    monitor.CycleInbox
	CanAct   bool
	User     string
	// Problem is the message key of a refusal or a form error; Target the
	// cycle it concerns.
	Problem, Target string
	Form            startForm
}

// cyclesFor builds the batches page's cycles section; problem and form
// come from a refused or invalid request.
func (c *Console) cyclesFor(r *http.Request, p *page, selected, problem, target string, form startForm) (*cyclesData, error) {
	if c.d.Cycles == nil {
		return nil, nil
	}
	ctx := r.Context()
	list, err := c.d.Cycles.List(ctx, cycleLimit)
	if err != nil {
		return nil, err
	}
	d := &cyclesData{CanAct: c.canAct(r), Problem: problem, Target: target, Form: form}
	if c.d.User != nil {
		d.User = c.d.User(r)
	}
	for _, cy := range list {
		d.Rows = append(d.Rows, rowOf(cy))
		if cy.Name == selected {
			if d.Selected, err = c.d.Cycles.Status(ctx, cy.Kind, cy.Period); err != nil {
				return nil, err
			}
		}
	}
	if d.CanAct {
		if d.Inbox, err = c.d.Cycles.Inbox(ctx); err != nil {
			return nil, err
		}
	}
	if d.Form.Kind == "" {
		d.Form.Kind = cycleKinds[0]
	}
	if d.Form.Period == "" {
		d.Form.Period = p.Now.In(clock.Shanghai).Format("2006-01")
	}
	return d, nil
}

// cycleProblem is the message key of a refusal of a cycle request (the
// user sees why), or "" for an error that is the hub's own.
func cycleProblem(err error) string {
	for _, x := range []struct {
		err error
		key string
	}{
		{monitor.ErrSameConfirmer, "cycle_err_same_confirmer"},
		{monitor.ErrConfirmOrder, "cycle_err_order"},
		{monitor.ErrCycleDone, "cycle_err_done"},
		{monitor.ErrCycleListTaken, "cycle_err_list_taken"},
		{monitor.ErrCycleBadPeriod, "cycle_err_period"},
		{monitor.ErrCycleNoList, "cycle_err_list"},
		{monitor.ErrNoCycle, "cycle_err_no_cycle"},
	} {
		if errors.Is(err, x.err) {
			return x.key
		}
	}
	return ""
}

// knownProblem accepts a problem key from a redirect's query only when it
// is one of the console's cycle refusals (never text from the URL).
func knownProblem(key string) string {
	if _, ok := messages[key]; ok && strings.HasPrefix(key, "cycle_err_") {
		return key
	}
	return ""
}

// cycleStart starts a cycle from a list in the inbox (kind, period, list,
// optional letter total in yuan).
func (c *Console) cycleStart(w http.ResponseWriter, r *http.Request) {
	if !c.cyclesAllowed(w, r) {
		return
	}
	form := startForm{Kind: r.FormValue("kind"), Period: strings.TrimSpace(r.FormValue("period")),
		List: r.FormValue("list"), LetterTotal: strings.TrimSpace(r.FormValue("letter_total"))}
	req := monitor.CycleRequest{Kind: form.Kind, Period: form.Period, List: form.List}
	problem := ""
	switch {
	case !slices.Contains(cycleKinds, form.Kind):
		problem = "cycle_err_kind"
	case !validPeriod(form.Period):
		problem = "cycle_err_period"
	}
	if problem == "" {
		inbox, err := c.d.Cycles.Inbox(r.Context())
		if err != nil {
			c.fail(w, "cycle inbox", err)
			return
		}
		if !slices.Contains(inbox.Lists, form.List) {
			problem = "cycle_err_list"
		}
	}
	if problem == "" && form.LetterTotal != "" {
		fen, err := parseYuan(form.LetterTotal)
		if err != nil {
			problem = "cycle_err_amount"
		}
		req.LetterTotalFen = fen
	}
	if problem != "" {
		c.cycleFormError(w, r, problem, "", form)
		return
	}
	c.cycleConfirmOrDo(w, r, "start", req, "", nil)
}

// cycleAction acts on one cycle: letter-total, confirm-district,
// confirm-city or resume.
func (c *Console) cycleAction(w http.ResponseWriter, r *http.Request) {
	kind, period, action := r.PathValue("kind"), r.PathValue("period"), r.PathValue("action")
	if !slices.Contains(cycleKinds, kind) || !validPeriod(period) ||
		!slices.Contains([]string{"letter-total", "confirm-district", "confirm-city", "resume"}, action) {
		c.notFound(w, r)
		return
	}
	if !c.cyclesAllowed(w, r) {
		return
	}
	list, err := c.d.Cycles.List(r.Context(), cycleLimit)
	if err != nil {
		c.fail(w, "cycles", err)
		return
	}
	var cy *monitor.Cycle
	for i := range list {
		if list[i].Kind == kind && list[i].Period == period {
			cy = &list[i]
		}
	}
	if cy == nil {
		c.cycleFormError(w, r, "cycle_err_no_cycle", kind+"-"+period, startForm{})
		return
	}
	req := monitor.CycleRequest{Kind: kind, Period: period}
	level := ""
	switch action {
	case "letter-total":
		fen, err := parseYuan(r.FormValue("letter_total"))
		if err != nil {
			c.cycleFormError(w, r, "cycle_err_amount", cy.Name, startForm{})
			return
		}
		req.LetterTotalFen = fen
	case "confirm-district":
		level = monitor.LevelDistrict
	case "confirm-city":
		level = monitor.LevelCity
	}
	c.cycleConfirmOrDo(w, r, action, req, level, cy)
}

// cyclesAllowed answers 404 without cycles and 403 to users who only read.
func (c *Console) cyclesAllowed(w http.ResponseWriter, r *http.Request) bool {
	if c.d.Cycles == nil {
		c.notFound(w, r)
		return false
	}
	if !c.canAct(r) {
		c.refuse(w, r, "monitor.cycle", r.URL.Path)
		return false
	}
	return true
}

func validPeriod(s string) bool {
	_, err := time.Parse("2006-01", s)
	return err == nil && len(s) == 7
}

// cycleFormError shows the batches page with the problem at the cycles
// section and the start form refilled, as 422 (404 for no such cycle).
func (c *Console) cycleFormError(w http.ResponseWriter, r *http.Request, problem, target string, form startForm) {
	p := c.newPage(w, r, "nav_batches")
	groups, err := c.batchGroups(r, p, target)
	if err != nil {
		c.fail(w, "batches", err)
		return
	}
	cd, err := c.cyclesFor(r, p, target, problem, target, form)
	if err != nil {
		c.fail(w, "cycles", err)
		return
	}
	p.Data = batchesData{Groups: groups, Cycles: cd}
	status := http.StatusUnprocessableEntity
	if problem == "cycle_err_no_cycle" {
		status = http.StatusNotFound
	}
	c.renderStatus(w, p, "batches", status)
}

// cycleConfirmOrDo shows the confirmation step first (the request's
// fields again, with confirm=yes), then makes the request as the actor and
// goes back to the batches page with the outcome.
func (c *Console) cycleConfirmOrDo(w http.ResponseWriter, r *http.Request, action string, req monitor.CycleRequest, level string, cy *monitor.Cycle) {
	p := c.newPage(w, r, "confirm_action")
	user, ok := c.actor(r)
	if r.FormValue("confirm") != "yes" || !ok {
		if r.FormValue("confirm") == "yes" {
			p.Flash = p.T("operator_required")
		}
		path := "batches/start"
		if cy != nil {
			path = "batches/" + req.Kind + "/" + req.Period + "/" + action
		}
		d := confirmData{Path: path, Question: "cycle_confirm_" + action, Button: "cycle_act_" + action,
			Cancel: "batches", AskUser: c.d.User == nil}
		line := func(label, value string) { d.Lines = append(d.Lines, confirmLine{label, value}) }
		hidden := func(name, value string) { d.Hidden = append(d.Hidden, confirmLine{name, value}) }
		if cy != nil {
			line("batch", cy.Name)
			line("cycle_stage", p.T("cycle_stage_"+cy.Stage))
			line("cycle_valid", formatCount(cy.Valid)+" / "+formatCount(cy.Records))
			line("cycle_system_total", formatYuan(cy.SystemTotalFen))
		} else {
			line("cycle_kind", p.T("cycle_kind_"+req.Kind))
			line("cycle_period", req.Period)
			line("cycle_list", req.List)
			hidden("kind", req.Kind)
			hidden("period", req.Period)
			hidden("list", req.List)
		}
		if req.LetterTotalFen != 0 {
			line("cycle_letter_total", formatYuan(req.LetterTotalFen))
			hidden("letter_total", formatYuan(req.LetterTotalFen))
		}
		if level != "" {
			line("cycle_level", p.T("cycle_level_"+level))
		}
		if c.d.User != nil {
			line("operator", user)
		}
		p.Data = d
		c.render(w, p, "confirm")
		return
	}
	ctx := r.Context()
	var err error
	name := req.Kind + "-" + req.Period
	if level != "" {
		err = c.d.Cycles.Confirm(ctx, req.Kind, req.Period, level, user)
	} else {
		var got monitor.Cycle
		got, err = c.d.Cycles.Submit(ctx, req, user)
		if got.Name != "" {
			name = got.Name
		}
	}
	q := url.Values{"batch": {name}}
	switch key := cycleProblem(err); {
	case err == nil:
		q.Set("flash", p.T("done")+": "+p.T("cycle_act_"+action)+" "+name)
	case key != "":
		c.log.Info("console: cycle request refused", "action", action, "batch", name, "user", user, "err", err)
		q.Set("problem", key)
	default:
		c.log.Warn("console: cycle request", "action", action, "batch", name, "err", err)
		q.Set("flash", p.T("action_failed")+": "+mask(err.Error()))
	}
	http.Redirect(w, r, p.Base+"batches?"+q.Encode()+"#cycles", http.StatusSeeOther)
}

// needsAction lists the cycles waiting for people, for the overview.
func (c *Console) needsAction(r *http.Request) []actionItem {
	if c.d.Cycles == nil {
		return nil
	}
	list, err := c.d.Cycles.List(r.Context(), cycleLimit)
	if err != nil {
		// The overview still renders; the batches page shows the error.
		c.log.Warn("console: cycles for the overview", "err", err)
		return []actionItem{{Class: "red", Key: "cycle_err_unavailable", Href: "batches"}}
	}
	var out []actionItem
	for _, cy := range list {
		row := rowOf(cy)
		if next := row.Next(); next != "" {
			out = append(out, actionItem{Class: row.Class(), Key: next, Kind: "cycle_kind_" + cy.Kind, Label: cy.Period,
				Href: "batches?batch=" + url.QueryEscape(cy.Name) + "#cycles"})
		}
	}
	// Problems first: failed cycles before those waiting for people.
	rank := func(a actionItem) int {
		if a.Class == "red" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b actionItem) int { return cmp.Compare(rank(a), rank(b)) })
	return out
}

// actionItem is one entry of the overview's "needs action" strip.
type actionItem struct {
	Class, Key, Kind, Label, Href string
}

// CycleError says why a cycle failed: in the page's language where the
// cycle itself shows it (a letter total that differs from the system
// total), then the service's own text, masked and marked English.
func (p *page) CycleError(cy monitor.Cycle) template.HTML {
	if cy.Error == "" {
		return ""
	}
	var lead string
	if cy.Stage == "total_check" && cy.LetterTotalFen > 0 && cy.LetterTotalFen != cy.SystemTotalFen {
		lead = strings.NewReplacer("{letter}", formatYuan(cy.LetterTotalFen), "{system}", formatYuan(cy.SystemTotalFen)).
			Replace(p.T("cycle_err_total_mismatch"))
		lead = template.HTMLEscapeString(lead) + "<br>"
	}
	return template.HTML(lead + `<span class="muted" lang="en">` + template.HTMLEscapeString(mask(cy.Error)) + `</span>`)
}
