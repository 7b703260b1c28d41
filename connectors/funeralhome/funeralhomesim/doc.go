// Package funeralhomesim is the reference funeral-home simulator: it implements the
// booking API of docs/api/booking.yaml (with switchable faults, so the
// conformance kit can be shown to catch each breach) and pushes realistic
// data to the hub's partner API. mzhub demo and the conformance kit's tests
// use it; cemeteries and columbaria are simulated by PushCemetery.
package funeralhomesim
