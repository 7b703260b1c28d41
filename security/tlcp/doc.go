// Package tlcp serves the console over TLCP (GB/T 38636-2020, the
// national-algorithm TLS: SM2 key exchange and signatures, SM4, SM3) with
// a required SM2 client certificate, and hands the verified certificate
// to the console login (security/accounts) as the administrator's
// cryptographic second factor. It also reads certificates for the
// `mzhub user cert-add` command. The protocol stack is
// github.com/tjfoc/gmsm/gmtls.
package tlcp
