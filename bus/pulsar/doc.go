// Package pulsar is the bus of the cluster profile, on Apache Pulsar through
// github.com/apache/pulsar-client-go.
//
// Topics map to persistent://<tenant>/<namespace>/<topic> (see
// Bus.FullTopic); the tenant and one namespace per business line are created
// by deploy/pulsar/setup.sh or EnsureNamespace. Producers use a key-based
// batch builder and stable names (broker deduplication); consumers use
// Key_Shared subscriptions starting at the earliest retained message. The
// produce and consume paths have separate clients, each with its memory
// limit. The client reconnects by itself; Publish fails after
// OperationTimeout while the broker is unreachable, so the source does not
// acknowledge its partner, and the broker redelivers what consumers held
// when their connection dropped.
//
// The Go client has no ack timeout, so Consumer implements the processing
// deadline itself: a delivery neither acked nor nacked in time is nacked
// (or dead-lettered at MaxDeliveries). Dead letters are published by the bus
// with the mzhub-dlq-* headers; the client's DLQ policy with the same
// MaxDeliveries catches messages redelivered without a nack (crash loops).
package pulsar
