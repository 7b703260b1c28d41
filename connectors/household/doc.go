// Package household is the vocabulary of household economic-status
// verification (居民经济状况核对) shared by the partners' connectors
// (connectors/hrss, hpf, samr, villagebank, ministry) and the verification
// service: a Query about a household's members, the partner's Answer made
// of Facts in integer fen, and the parsing helpers every answer parser uses
// (money in yuan to fen, months, ID numbers). Formats stay in the connector
// packages; this package holds only what they have in common.
package household
