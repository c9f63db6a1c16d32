package open

import "time"

// SetReopenEvery sets how often a store that could not be opened is tried
// again, until the test ends.
func SetReopenEvery(t interface{ Cleanup(func()) }, d time.Duration) {
	old := reopenEvery
	reopenEvery = d
	t.Cleanup(func() { reopenEvery = old })
}
