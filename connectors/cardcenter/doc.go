// Package cardcenter is the connector to the card center (卡中心): the
// senior cards (敬老卡) and, as a second source of applications for the
// elderly allowance, the social-security cards (社保卡, "一卡通").
//
//   - Applications (申领) are pulled from the card center's API by cursor
//     (GET /api/v1/applications), each carrying its card type, its channel
//     (window, online, sscard, …) and a 一卡通 flag; production progress
//     (制卡: accepted, produced, issued) the same way (GET /api/v1/production).
//     The cursors are kept in the state store; an Applier applies both
//     idempotently by application id.
//   - Card status (normal, lost, frozen, cancelled) is asked in batches
//     (POST /api/v1/card-status) before a payment month and on demand,
//     within the card center's rate limit (StatusClient).
//
// Package cardcentersim simulates the card center with injectable faults.
package cardcenter
