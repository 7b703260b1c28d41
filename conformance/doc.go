// Package conformance is the onboarding kit's contract test runner, used by
// `mzhub conformance`:
//
//   - RunFuneralHome checks a funeral home's implementation of the booking
//     API (docs/api/booking.yaml): every operation with good and bad inputs,
//     signatures, idempotency, error shapes and the 5-second deadline;
//   - RunPusher checks from the hub's side that a partner's pushes in the
//     sandbox cover every operation its role requires;
//   - StartSandbox serves a throwaway sandbox of the partner API behind a
//     signing proxy, for property-based tests (deploy/schemathesis).
//
// A Report prints as text and as JUnit XML, which the bureau files as
// evidence of the integration test.
package conformance
