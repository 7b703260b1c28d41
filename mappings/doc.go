// Package mappings is the hub's mapping engine: it reads and writes partner
// file formats (fixed-width in bytes of a charset, delimited, JSON, XML) one
// record at a time and maps them to and from the hub's canonical records.
//
// A layout, a mapping and a code table are YAML files (kind: layout,
// kind: mapping, kind: codetable), loaded strictly from an fs.FS. Layouts
// describe header, detail and trailer records, typed fields (string,
// integer, amount in fen, date/time in Asia/Shanghai, enum, constant) and
// their validators. Readers never stop on a malformed record: they report it
// as a Reject (line, field, problem, masked excerpt) and go on; the caller
// decides whether the file is accepted, for example with Reader.Check, which
// compares the trailer's count and total with the details.
//
// Memory does not grow with the size of a file: readers and writers keep one
// record (plus one line of look-ahead) at a time.
package mappings
