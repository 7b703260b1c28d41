package config

import "errors"

// Sentinel errors. Match them with errors.Is.
var (
	// ErrMultipleDocuments is returned for a config file with more than one YAML document.
	ErrMultipleDocuments = errors.New("more than one YAML document")
	// ErrUnknownSection is returned by SetSection for a key no registered section has.
	ErrUnknownSection = errors.New("config: unknown section")
)
