// Package all blank-imports the built-in connectors so that they register
// themselves. Only cmd/ imports it; tests build their own registries.
package all

// Built-in connectors are added here as they land, one import per package:
// import _ "github.com/shanghai-mca/mzhub/connectors/bank"
