// Package villagebank is the connector of the 14 village banks (村镇银行)
// that answer deposit queries for household verification. They all speak
// one REST template (Template, the file's defaults: paths, answer layout, transport limits);
// each bank is an instance of it (Bank: code, name, base URL), so the 14
// are configuration (configs/partners/villagebanks.yaml), not code.
// Statements and other attachments stay at the bank: an answer carries an
// external link to them, which the console shows and opens. The simulator
// is villagebanksim.
package villagebank
