// Package hpf is the connector of the Shanghai housing provident fund
// centre (公积金中心), a WebService (SOAP 1.2, WS-Security
// UsernameToken). For household verification it answers each member's
// contributions and, new in the tender, housing-fund loans; both are
// income evidence, recomputed here by the verification rule (Rule): the
// wage implied by the contribution at its rate, and the least income a
// loan's monthly repayment implies under the fund's lending limit. The
// simulator is hpfsim.
package hpf
