// Package hrss is the connector of the human resources and social security
// bureau (人社局), reached through the city big-data centre's
// exchange-sharing platform as a WebService (SOAP 1.1, WS-Security
// UsernameToken): for household verification it answers employment (the
// contribution wage base), pensions, social-insurance contributions and
// the work-injury insurance nursing fee (工伤保险生活护理费). The same
// platform can answer through front-end processor tables instead
// (frontend.go: the kind hrss-frontend reads its answer rows with the
// WebService's normalisation; docs/verification.md). The simulator is
// hrsssim, for both paths (Sim for the WebService, Platform for the tables).
package hrss
