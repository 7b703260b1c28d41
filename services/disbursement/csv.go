package disbursement

import (
	"encoding/csv"
	"io"
	"strings"
)

// SafeCell returns s ready for a CSV cell that a spreadsheet program will
// open: text starting with = + - @ or a tab or carriage return would be run
// as a formula (a reason text from a bank, a name), so it gets a leading
// apostrophe, which spreadsheets show as text and do not display.
// encoding/csv does the quoting of separators, quotes and line breaks.
func SafeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvFile writes the cycle's CSV files (failures.csv, report.csv): a
// UTF-8 byte order mark, so that spreadsheet programs show Chinese text
// correctly, then rows through encoding/csv with every text cell passed
// through SafeCell. Numbers are written by the caller as digits.
type csvFile struct {
	w *csv.Writer
}

func newCSVFile(w io.Writer, header ...string) (*csvFile, error) {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return nil, err
	}
	c := &csvFile{w: csv.NewWriter(w)}
	return c, c.w.Write(header)
}

// row writes one row; text cells are neutralised.
func (c *csvFile) row(cells ...string) error {
	for i, s := range cells {
		cells[i] = SafeCell(s)
	}
	return c.w.Write(cells)
}

// close flushes and reports any write error.
func (c *csvFile) close() error {
	c.w.Flush()
	return c.w.Error()
}
