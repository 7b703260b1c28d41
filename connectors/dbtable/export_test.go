package dbtable

// SetAfterEmit makes the source run f between the hand-over and the commit.
func (s *Source) SetAfterEmit(f func() error) { s.afterEmit = f }
