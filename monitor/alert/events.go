package alert

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

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
				Summary:     fmt.Sprintf("reconciliation mismatch in batch %s: %s %s", e.BatchID, e.ErrorCode, e.ErrorMessage)})
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
			Summary:     fmt.Sprintf("batch %s: %.1f%% of the records failed at the partner (%d of %d)", k.batch, rate*100, v[0], v[1])})
	}
	// Trailer mismatches: a file whose summary line does not match its
	// details (rejected or failed with the mapping engine's message).
	for _, t := range []monitor.EventType{monitor.Rejected, monitor.Failed} {
		evs, err := search(t)
		if err != nil {
			return err
		}
		for _, e := range evs {
			switch {
			case isTrailer(e):
				raise(monitor.Alert{Rule: "trailer", Severity: monitor.SevCritical, Partner: e.Partner, Flow: e.Flow,
					Fingerprint: "trailer/" + e.Partner + "/" + e.Flow + "/" + e.FileName + "/" + e.BatchID,
					Summary:     fmt.Sprintf("file %s: trailer does not match its details: %s", e.FileName, e.ErrorMessage)})
			case e.ErrorClass == "breaker" && e.ErrorCode != "breaker_closed":
				raise(monitor.Alert{Rule: "partner_down", Severity: monitor.SevCritical, Partner: e.Partner, Flow: e.Flow,
					Fingerprint: "partner_down/" + e.Partner,
					Summary:     fmt.Sprintf("circuit breaker %s: the partner does not answer", strings.TrimPrefix(e.ErrorCode, "breaker_"))})
			}
		}
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
			Summary:     fmt.Sprintf("batch %s: the return file %s did not arrive by its deadline", e.BatchID, e.FileName)})
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
