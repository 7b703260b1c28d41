package security

import "errors"

// ErrSelfTest means a known-answer test of SM2, SM3 or SM4 failed: the
// cryptographic implementation in this binary cannot be trusted, and the hub
// refuses to start (see SelfTest).
var ErrSelfTest = errors.New("security: SM2/SM3/SM4 self test failed")
