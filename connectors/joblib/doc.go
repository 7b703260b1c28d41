// Package joblib is the hub's client of the one-stop portal (一网通办): its
// job library (办件库), where every application ("办件") to the bureau and
// its status nodes live, and its 免申即享 interfaces (benefits granted
// without application: the bureau pushes eligible persons, the portal hands
// back the cases persons agreed to, the bureau confirms them and reports the
// payout).
//
// The interface is REST/JSON over connectors/httpx (deadline, circuit
// breaker, rate limit); every call is signed with MZ-HMAC-SM3 (key id,
// timestamp, nonce, SM3 body digest) under the key the portal issued to the
// bureau. docs/portal.md describes each endpoint. The parsers of the
// portal's answers (ParseApplicationPage, ParseCasePage, ParseResults, ...)
// refuse malformed items one by one with a reason, so one bad record never
// stops a page; every pushing call has a query the caller uses when a send
// is in doubt.
//
// joblibsim is the portal's simulator with injectable faults.
package joblib
