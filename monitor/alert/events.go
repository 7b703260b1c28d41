package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Incident rules: alerts raised from single events of the last two
// evaluation intervals (the overlap makes sure none is missed; the
// fingerprint absorbs repeats). They are what the data-quality score
// counts as incidents (IncidentRules).

// IncidentRules are the rules whose alerts are incidents of a partner
// flow: the quality score deducts for each (monitor/quality).
var IncidentRules = []string{"failed_payments", "reconciliation", "trailer", "late_return", "partner_down", "expectation"}

// eventRules raises the incident alerts of the events in [from, to).
func (r *Rules) eventRules(ctx context.Context, from, to time.Time, raise func(monitor.Alert)) error {
	search := func(t monitor.EventType) ([]monitor.Event, error) {
		return r.Store.Search(ctx, monitor.Filter{Type: t, From: from, To: to, Limit: 5000})
	}
	// Reconciliations: a mismatch is critical; failed records (payments the
	// bank refused) above the error-rate thresholds raise failed_payments.
	recs, err := search(monitor.Reconciled)
	if err != nil {
		return err
	}
	type key struct{ partner, flow, batch string }
	failed := map[key][2]int64{}
	for _, e := range recs {
		if e.Status == monitor.Error {
			raise(monitor.Alert{Rule: "reconciliation", Severity: monitor.SevCritical, Partner: e.Partner, Flow: e.Flow,
				Fingerprint: "reconciliation/" + e.Partner + "/" + e.Flow + "/" + e.BatchID,
				Summary:     fmt.Sprintf("reconciliation mismatch in batch %s: %s %s", e.BatchID, e.ErrorCode, e.ErrorMessage),
				Message:     monitor.MsgReconciliation, Args: map[string]string{"batch": e.BatchID, "code": e.ErrorCode, "detail": e.ErrorMessage}})
		}
		if e.RecordsFailed > 0 || e.Records > 0 {
			k := key{e.Partner, e.Flow, e.BatchID}
			v := failed[k]
			failed[k] = [2]int64{v[0] + e.RecordsFailed, v[1] + max(e.Records, e.RecordsFailed)}
		}
	}
	keys := make([]key, 0, len(failed))
	for k := range failed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].partner+keys[i].batch < keys[j].partner+keys[j].batch })
	th := r.Thresholds
	for _, k := range keys {
		v := failed[k]
		if v[0] == 0 || v[1] == 0 {
			continue
		}
		rate := float64(v[0]) / float64(v[1])
		sev := monitor.Severity("")
		switch {
		case th.ErrorRateRed > 0 && rate >= th.ErrorRateRed:
			sev = monitor.SevCritical
		case th.ErrorRateAmber > 0 && rate >= th.ErrorRateAmber:
			sev = monitor.SevWarning
		}
		if sev == "" {
			continue
		}
		raise(monitor.Alert{Rule: "failed_payments", Severity: sev, Partner: k.partner, Flow: k.flow,
			Fingerprint: "failed_payments/" + k.partner + "/" + k.flow + "/" + k.batch,
			Summary:     fmt.Sprintf("batch %s: %.1f%% of the records failed at the partner (%d of %d)", k.batch, rate*100, v[0], v[1]),
			Message:     monitor.MsgFailedPayments, Args: map[string]string{"batch": k.batch, "rate": pct(rate), "failed": num(v[0]), "records": num(v[1])}})
	}
	// Trailer mismatches: a file whose summary line does not match its
	// details (rejected or failed with the mapping engine's message).
	// Partners down: the newest breaker change of each partner in the
	// window, unless it closed or the partner answered since.
	breakers := map[string]monitor.Event{}
	var down []string
	for _, t := range []monitor.EventType{monitor.Rejected, monitor.Failed} {
		evs, err := search(t)
		if err != nil {
			return err
		}
		for _, e := range evs { // newest first
			switch {
			case isTrailer(e):
				raise(monitor.Alert{Rule: "trailer", Severity: monitor.SevCritical, Partner: e.Partner, Flow: e.Flow,
					Fingerprint: "trailer/" + e.Partner + "/" + e.Flow + "/" + e.FileName + "/" + e.BatchID,
					Summary:     fmt.Sprintf("file %s: trailer does not match its details: %s", e.FileName, e.ErrorMessage),
					Message:     monitor.MsgTrailer, Args: map[string]string{"file": e.FileName, "detail": e.ErrorMessage}})
			case e.ErrorClass == "breaker":
				if _, seen := breakers[e.Partner]; !seen {
					breakers[e.Partner] = e
					down = append(down, e.Partner)
				}
			}
		}
	}
	sort.Strings(down)
	for _, p := range down {
		e := breakers[p]
		if e.ErrorCode == "breaker_closed" {
			continue
		}
		if _, up, err := r.answered(ctx, p, e.Time, to); err != nil {
			return err
		} else if up {
			continue
		}
		raise(monitor.Alert{Rule: "partner_down", Severity: monitor.SevCritical, Partner: e.Partner, Flow: e.Flow,
			Fingerprint: "partner_down/" + e.Partner,
			Summary:     fmt.Sprintf("circuit breaker %s: the partner does not answer", strings.TrimPrefix(e.ErrorCode, "breaker_")),
			Message:     monitor.MsgPartnerDown, Args: map[string]string{"code": e.ErrorCode}})
	}
	// Late returns: a batch's return file not there by its deadline.
	late, err := search(monitor.ExpectationMissed)
	if err != nil {
		return err
	}
	for _, e := range late {
		if e.ErrorCode != "return_late" && e.Stage != "returns" {
			continue // the expectation tracker raises its own alert
		}
		raise(monitor.Alert{Rule: "late_return", Severity: monitor.SevCritical, Partner: e.Partner, Flow: e.Flow,
			Fingerprint: "late_return/" + e.Partner + "/" + e.Flow + "/" + e.BatchID,
			Summary:     fmt.Sprintf("batch %s: the return file %s did not arrive by its deadline", e.BatchID, e.FileName),
			Message:     monitor.MsgLateReturn, Args: map[string]string{"batch": e.BatchID, "file": e.FileName}})
	}
	return nil
}

// isTrailer tells a trailer mismatch: the error code says so, or the
// mapping engine's message does (mappings.ErrTrailerMismatch's text).
func isTrailer(e monitor.Event) bool {
	if e.Status == monitor.OK {
		return false
	}
	return e.ErrorCode == "trailer_mismatch" || e.ErrorClass == "trailer" ||
		strings.Contains(e.ErrorMessage, "trailer does not match") || strings.Contains(e.ErrorMessage, "trailer check")
}

// recoveryTypes are the steps that show a partner answering: an exchange
// with it that succeeded.
var recoveryTypes = []monitor.EventType{monitor.Received, monitor.Fetched, monitor.Sent, monitor.Uploaded, monitor.Downloaded}

// answered finds the first successful exchange with partner after since
// (before to): the partner answers again.
func (r *Rules) answered(ctx context.Context, partner string, since, to time.Time) (monitor.Event, bool, error) {
	evs, err := r.Store.Search(ctx, monitor.Filter{Partner: partner, Status: monitor.OK, From: since.Add(time.Millisecond), To: to, Limit: 1000})
	if err != nil {
		return monitor.Event{}, false, fmt.Errorf("alert: exchanges of %s: %w", partner, err)
	}
	for i := len(evs) - 1; i >= 0; i-- { // oldest first
		e := evs[i]
		if e.Direction != monitor.Internal && e.ErrorClass != "breaker" && slices.Contains(recoveryTypes, e.Type) {
			return e, true, nil
		}
	}
	return monitor.Event{}, false, nil
}

// resolvePartnersDown resolves each live partner_down alert whose partner
// answers again: its circuit breaker closed, or an exchange with it
// succeeded after the breaker's last change (a restarted hub's breaker
// starts closed and never reports closing). lookback reaches back from the
// alert's first raise to the breaker change that raised it.
func (r *Rules) resolvePartnersDown(ctx context.Context, now time.Time, lookback time.Duration) error {
	live, err := r.Inbox.Live(ctx, "partner_down")
	if err != nil {
		return err
	}
	to := now.Add(time.Millisecond)
	var errs []error
	for _, a := range live {
		last, err := r.Store.Search(ctx, monitor.Filter{Partner: a.Partner, Type: monitor.Failed, ErrorClass: "breaker",
			From: a.FirstAt.Add(-lookback), To: to, Limit: 1})
		if err != nil {
			errs = append(errs, fmt.Errorf("alert: breaker of %s: %w", a.Partner, err))
			continue
		}
		since := a.LastAt
		if len(last) == 1 {
			if b := last[0]; b.ErrorCode == "breaker_closed" {
				errs = append(errs, r.Inbox.AutoResolve(ctx, a.ID, monitor.MsgResolvedBreakerClosed,
					map[string]string{"at": b.Time.In(clock.Shanghai).Format(time.RFC3339)},
					"auto-resolved: the circuit breaker closed at "+b.Time.In(clock.Shanghai).Format("2006-01-02 15:04:05")))
				continue
			} else {
				since = b.Time
			}
		}
		e, up, err := r.answered(ctx, a.Partner, since, to)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if up {
			errs = append(errs, r.Inbox.AutoResolve(ctx, a.ID, monitor.MsgResolvedRecovered,
				map[string]string{"at": e.Time.In(clock.Shanghai).Format(time.RFC3339), "flow": e.Flow, "type": string(e.Type)},
				fmt.Sprintf("auto-resolved: %s %s succeeded at %s", e.Flow, e.Type, e.Time.In(clock.Shanghai).Format("2006-01-02 15:04:05"))))
		}
	}
	return errors.Join(errs...)
}
