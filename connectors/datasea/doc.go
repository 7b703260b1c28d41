// Package datasea is the connector to the data sea (数据海), the city
// big-data center's resource platform, reached through the city
// exchange-sharing platform. Three ways in, one record shape (Record):
//
//   - the platform's HTTP API, pulled daily per feed (death records,
//     household-registration moves) page by page from a cursor that is kept
//     in the state store, so a restarted pull resumes where it stopped
//     (route kind datasea, feeds death and migration: Source);
//   - batch files the platform drops on SFTP (DEATH_YYYYMMDD.txt,
//     MIGRATION_YYYYMMDD.txt, GB18030, one record a line, with done files),
//     picked and claimed through connectors/sftp, their bad lines
//     quarantined with their line numbers (the same kind, feed files:
//     FileSource);
//   - the front-end processor tables (前置机库表交换), through a route of the
//     dbtable connector kind publishing to the bus topic datasea.records.
//
// The routes put each record on the bus topic Topic, where the Consumer
// hands it to an Applier (services/allowance), which applies it idempotently by
// record id; a malformed record is quarantined with its reason and never
// applied. The way out (入海) pushes each month's recipients list, masked,
// signed and counted, and records the platform's receipt (Pusher).
//
// Package dataseasim simulates the platform with injectable faults.
package datasea
