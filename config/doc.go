// Package config is the hub's root configuration: typed structs composed from
// each subsystem's own Config, decoded strictly from YAML (unknown keys are
// errors with their line), defaulted, overridden from MZHUB_* environment
// variables and validated all at once. The reference in
// docs/config-reference.md and the schema in docs/config.schema.json are
// generated from the structs' doc comments.
//
// Services own sections of the file without config importing them: a
// service registers its section in init (RegisterSection, with its key, a
// description and its defaults) and reads it back with a typed accessor
// built on SectionOf (funeral.ConfigFrom). A registered section is decoded,
// overridden, validated, resolved and documented like Config's own keys.
package config
