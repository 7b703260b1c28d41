// Package mapcli implements `mzhub map`: convert one file with a mapping
// file, write rejected records to a reject file, and print a summary. It is
// kept out of cmd/mzhub so that it can be tested and reused on its own.
package mapcli
