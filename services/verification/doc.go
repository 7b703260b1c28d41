// Package verification is the household economic-status verification
// exchange (居民经济状况核对). A request (a household's members with their
// ID numbers, the authorisation reference, the items to check) is stored
// and fanned out as one outbox entry per partner that applies (social
// security, the housing fund, market supervision, the 14 village banks,
// the ministry platform per province); each partner has its own
// dispatcher, concurrency, deadline, and the connector's breaker and rate
// limit. Every call carries an idempotency key (request, partner, scope)
// the partner keeps its answer under: a call whose outcome is unknown (a
// crash, a timeout) is asked about by that key (Lookup) and only asked
// again when the partner has never seen it.
//
// Answers are checked (completeness, format, timeliness), normalised to
// facts in fen, deduplicated, sampled for manual review (抽检) before
// acceptance, and aggregated per member and household on read: a result
// is partial while calls are open and final once every call answered,
// was rejected, failed or passed its deadline. Requests from other
// provinces arrive through the ministry platform, run the same way against
// the in-city partners and are returned. Quality is watched per partner
// with thresholds that raise monitor events and a periodic report.
package verification
