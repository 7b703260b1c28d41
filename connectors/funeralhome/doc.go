// Package funeralhome is the hub's connector to funeral homes' booking APIs
// (docs/api/booking.yaml): a signed client with deadlines, a circuit breaker
// and a rate limit, and a sink that turns booking commands from the bus
// into idempotent reservations and cancellations. The inbound side (what
// homes push) is services/funeral; the simulator is in funeralhomesim/.
package funeralhome
