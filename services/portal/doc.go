// Package portal is the bureau's side of the one-stop portal (一网通办):
// the job library (办件库) and 免申即享.
//
// Job library: new applications are fetched by a cursor kept in the state
// store (the page's applications and the advanced cursor are committed in
// one transaction, so a restart neither loses nor repeats one); each is
// pre-reviewed (预审) by the hub, and its further nodes (受理, 办理, 办结)
// come from the bureau's business system as status files, or, for an item
// answered from a register (救助证明), from the hub itself with a
// certificate reference. Every node goes through the outbox.
//
// 免申即享: the business system drops each month's register of eligible
// persons per item; the persons not pushed before are pushed in batches.
// Cases the portal hands back are checked (current status, the item's
// qualification rule, an existing application or enjoyment) and confirmed
// or refused with the reason, automatically when they pass. Once the
// allowance is actually paid (the disbursement service's reconciled
// returns) a payout record goes to the portal; a failed payment sends none.
//
// The outbox (portal_outbox) makes each send exactly-once as the portal
// sees it: a row is marked sending before the call; an answer settles it;
// a call that fails ambiguously (timeout, 5xx, a malformed answer) leaves it
// in doubt, and an in-doubt or crashed send is re-checked with the portal's
// query interface before anything is sent again. Nodes of one application
// go in seq order: a node is sent only once every earlier node of its
// application is delivered.
//
// Person ID numbers are stored sealed (SM4-GCM) with an HMAC-SM3 blind
// index for matching; logs and events carry masked numbers only.
package portal
