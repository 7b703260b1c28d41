// Package platformsim simulates the bureau's funeral management platform
// (殡葬管理平台) as the hub sees it: a system outside the hub that reads
// funeral.changes from its own subscription on the bus (configs/routes/
// topics.yaml declares it) and keeps the latest revision of every record.
// mzhub demo runs it, so the funeral changes the service relays are read
// there as in production.
package platformsim
