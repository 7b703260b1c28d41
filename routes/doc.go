// Package routes is the hub's route engine. A route is a YAML file in
// configs/routes: a source (from), a list of steps (map, validate, filter,
// split, aggregate, dedupe, enrich, switch), one or more sinks (to), an
// error policy (retry with backoff, dead letter), an ordering/idempotency key
// expression and a rate limit.
//
// The runner moves a message source → bus → steps → sinks:
//
//   - the source's emit publishes the message durably on the route's topic
//     (route.<id>); only then does the source acknowledge its partner (a
//     route with no steps whose one sink is a bus topic publishes straight
//     to that topic instead: one hop, the same durability and events);
//   - a consumer on that topic runs the steps and delivers to each sink;
//   - a delivery ledger in the state store, keyed by route + sink +
//     idempotency key, records what each sink received, so a crash and a
//     redelivery never deliver twice to a sink that is not idempotent itself;
//   - a send whose outcome is unknown (timed out, cancelled, connection lost
//     after the request was written, cut by a shutdown's deadline) is in
//     doubt: its claim stays, and the next attempt asks the partner's status
//     (DeliveryChecker) or dead-letters it as in doubt, never resends it
//     blindly;
//   - failures are retried by the bus with exponential backoff, jitter and a
//     cap; after the last attempt the original message is dead-lettered with
//     the error, the attempt count and the failing endpoint (mzhub dlq).
//
// A stop (shutdown, reload) takes no new deliveries and lets those in flight
// finish within EngineConfig.DrainTimeout.
//
// Route files are decoded strictly (unknown keys are errors with file:line)
// and validated completely before they replace a running route (hot reload).
package routes
