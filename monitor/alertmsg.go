package monitor

// Alert message keys: what an alert says, as a key of the console
// dictionary with named parameters (Alert.Message, Alert.Args), so that the
// console shows it in zh-CN or English. Parameter values are language
// neutral: numbers formatted with a decimal point, ids, file names, error
// codes (the console names them), flows and event types (named too),
// durations in Go's form ("24h0m0s") and times in RFC 3339.
const (
	MsgErrorRate        = "alert_error_rate"
	MsgBacklog          = "alert_backlog"
	MsgStaleness        = "alert_staleness"
	MsgStalenessNever   = "alert_staleness_never"
	MsgReconciliation   = "alert_reconciliation"
	MsgFailedPayments   = "alert_failed_payments"
	MsgTrailer          = "alert_trailer"
	MsgPartnerDown      = "alert_partner_down"
	MsgLateReturn       = "alert_late_return"
	MsgExpectation      = "alert_expectation"
	MsgExpectationBatch = "alert_expectation_batch"
	MsgQuality          = "alert_quality"
	// Reasons of an automatic resolution (Alert.ResolveMessage).
	MsgResolvedBreakerClosed = "alert_resolved_breaker_closed"
	MsgResolvedRecovered     = "alert_resolved_recovered"
)

// AlertMessages returns every alert message key with the parameters it
// takes; the console's dictionary must name each with exactly these
// parameters (a console test checks).
func AlertMessages() map[string][]string {
	return map[string][]string{
		MsgErrorRate:             {"rate", "errors", "events"},
		MsgBacklog:               {"count"},
		MsgStaleness:             {"every", "since"},
		MsgStalenessNever:        {"every"},
		MsgReconciliation:        {"batch", "code", "detail"},
		MsgFailedPayments:        {"batch", "rate", "failed", "records"},
		MsgTrailer:               {"file", "detail"},
		MsgPartnerDown:           {"code"},
		MsgLateReturn:            {"batch", "file"},
		MsgExpectation:           {"name", "due"},
		MsgExpectationBatch:      {"name", "batch", "due"},
		MsgQuality:               {"score", "min", "completeness", "format", "timeliness"},
		MsgResolvedBreakerClosed: {"at"},
		MsgResolvedRecovered:     {"at", "flow", "type"},
	}
}
