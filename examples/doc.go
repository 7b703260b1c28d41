// Package examples holds client examples of the funeral partner API
// (docs/api/partner.yaml, signed as docs/signing.md says) in Go
// (examples/go), Python (examples/python) and Java (examples/java), and the
// integration test that runs each against a real hub. examples/README.md
// tells an integrator how to run them.
package examples
