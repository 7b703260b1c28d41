// Package quality scores partner data quality per partner flow:
// completeness (records not failed), format (no validation or format
// errors), timeliness (answers within the rule's time) and a random sample of
// answered exchanges for manual review; it raises alerts below a threshold
// and writes the periodic report as HTML and CSV.
package quality
