// Package allowance holds the rules of the elderly allowance (老年综合津贴)
// that act on the data sea's records:
//
//   - a death stops payment from the month after death; a payment already
//     made for a month after death becomes a claw-back item;
//   - a move out of Shanghai (迁出) stops payment from the month after the move;
//   - a move in (迁入) creates a pending entry for district review;
//   - an operator confirming a person alive invalidates the death record,
//     restores the person and turns the months withheld into back-payments
//     (补发), which go into the next list;
//   - screening warnings: an ID number not starting with 310 without a 迁入
//     record; a card application later than a 迁出 without a later 迁入.
//
// Records are applied idempotently by record id (Apply); the disbursement
// intake calls Screen before a list is cut, so a dead or moved-out person is
// never in a bank file. Person identity is the blind index (HMAC-SM3) of the
// ID number; the number itself is kept only sealed (SM4-GCM) and shown masked.
package allowance
