package monitor

// Spares returns how many spare batch arrays the writer keeps (tests).
func (w *Writer) Spares() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.spares)
}
