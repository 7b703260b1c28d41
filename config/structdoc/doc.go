// Package structdoc walks the YAML keys of a config struct and reads the
// doc comments of its fields from the Go sources, so that a reference, a
// JSON Schema, environment overrides and strict decoders all see one list
// of keys. The hub config (package config), the connector kinds and the
// route steps (package routes) use it; it imports nothing of the hub.
package structdoc
