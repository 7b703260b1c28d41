// Package soap is the "soap" connector kind and the WebService client the
// verification partners that speak SOAP use (social security, the housing
// fund): SOAP 1.1 and 1.2 envelopes built from request templates, an
// optional WS-Security UsernameToken (PasswordText or PasswordDigest), and
// faults mapped to retryable (Server / Receiver) or permanent (Client /
// Sender, connectors.ErrPermanent). The transport is connectors/httpx, so a
// SOAP call has the same deadline, circuit breaker, rate limit and retries
// as an http call, and the route engine writes the same events for it.
package soap
