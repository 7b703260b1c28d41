// Package httpx is the hub's shared HTTP transport and its "http" connector
// kind.
//
// Client wraps resty with what every partner call needs: a deadline per
// call, a circuit breaker (gobreaker) so that one partner's outage fails fast
// instead of piling up, a rate limit, and bounded retries with exponential
// backoff for transport errors and 5xx answers. 4xx answers (except 408 and
// 429) are permanent failures (connectors.ErrPermanent): retrying cannot fix
// them.
//
// The connector kind "http" gives a sink (POST/PUT a message to a URL,
// carrying its idempotency key in a header, with an optional status URL the
// route engine asks when a delivery is in doubt - a send that timed out, was
// cancelled or lost its connection after the request was written (marked
// connectors.ErrInDoubt; one refused before anything left is marked
// connectors.ErrNotSent), or one a crash interrupted; it also
// answers enrich lookups) and a source (an inbound endpoint: the route engine
// mounts it under /routes/<route id>; it answers 202 only once the message
// is durably on the bus).
package httpx
