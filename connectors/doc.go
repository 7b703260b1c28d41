// Package connectors holds the registry of connector kinds and the small
// interfaces every connector implements: Source (data coming in from a
// partner), Sink (data going out to a partner) and Deps (what the hub hands
// to a connector). One package per external system lives below it
// (connectors/bank, connectors/funeralhome, ...), beside the shared transports
// (connectors/sftp, connectors/httpx). Each registers itself in init with
// Register; connectors/all blank-imports the built-ins and only cmd/ imports it.
package connectors
