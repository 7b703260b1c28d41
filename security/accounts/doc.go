// Package accounts is the console's identity and access control: unique
// users with exactly one role each (operator, security admin, auditor, so
// the three administrative duties stay with different people), a password
// policy (length, character classes, expiry), PBKDF2-HMAC-SM3 password
// hashes, lockout after repeated failures, sessions with idle and absolute
// timeouts, CSRF tokens and secure cookies. There is no default password:
// the first administrator is created by `mzhub user create-admin`, which
// prints a one-time password that must be changed at first login.
//
// The console mounts Manager.Handler (login, logout, password change,
// session, user administration) and wraps its own handlers with
// Manager.Middleware and RequireRole.
package accounts
