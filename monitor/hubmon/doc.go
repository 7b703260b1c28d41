// Package hubmon assembles the monitor the way the hub runs it: the event
// store chosen by monitor.Config, the event writer, the Prometheus metrics,
// expectations, alert rules, data-quality scoring and the console handler.
// It lives apart from package monitor because it imports the stores and the
// console, which import monitor.
package hubmon
