// Package routetest holds test helpers of the route engine: an in-memory
// bus (not durable; the contract's delivery, nack, redelivery and dead-letter
// behaviour) and a recording sink connector.
package routetest
