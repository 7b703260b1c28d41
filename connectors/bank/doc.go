// Package bank is the connector of the six partner banks (BOC, BOCOM, CEB,
// CMB, SPDB, CCB): batch files over SFTP both ways. A bank is configured in
// configs/partners/banks/<code>.yaml: its SFTP endpoint and folders, file
// naming, the layouts (configs/mappings/banks) of its disbursement,
// return, deduction and deduction-return files, its schedule and the
// deadline of its return files. Formats stay in the mappings engine:
// FileWriter and ReadPayments adapt canonical payment records to a bank's
// layout. Package sim holds in-process simulators of the six banks.
package bank
