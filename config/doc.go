// Package config is the hub's root configuration: typed structs composed from
// each subsystem's own Config, decoded strictly from YAML (unknown keys are
// errors with their line), defaulted, overridden from MZHUB_* environment
// variables and validated all at once. The reference in
// docs/config-reference.md is generated from the structs' doc comments.
package config
