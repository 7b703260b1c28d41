// Package security holds the hub's MLPS level 3 and commercial-cryptography
// baseline: SM2/SM3/SM4 through emmansun/gmsm, field encryption, request
// signing, the audit chain, console accounts and masking.
package security
