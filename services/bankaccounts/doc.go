// Package bankaccounts is the banks' account lifecycle: account verification
// (核查), opening (开户), activation (激活), loss report (挂失) and its
// release (解挂失), and closure (注销), asked of the six banks by file over
// SFTP in each bank's layout (connectors/bank, configs/mappings/banks/
// *-account*.yaml), exactly like the payment files: written locally,
// uploaded under a temporary name with a signature and a done file,
// resumable through the SFTP ledger. The banks' result files are polled,
// claimed once in the ledger and applied in one transaction each, once
// (a file read twice changes nothing). The results move each person's
// account state at the bank; the allowance intake screens its list through
// Screen, which leaves out the persons whose opening or verification failed
// (开户失败, a stage of the month) and the accounts lost, frozen or closed.
// ID numbers, names and accounts are sealed at rest and masked in logs and
// events.
package bankaccounts
