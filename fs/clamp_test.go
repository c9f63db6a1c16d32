package fs

import (
	"math"
	"testing"
	"time"
)

// TestClampTime: a time the drive cannot keep is kept as the nearest it
// can, not wrapped (year 1 was stored as 1754).
func TestClampTime(t *testing.T) {
	for _, c := range []struct{ in, want time.Time }{
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), minTime},
		{time.Unix(1e11, 0), maxTime},
		{time.Unix(math.MaxInt64/2, 0), maxTime},
		{time.Unix(0, 0), time.Unix(0, 0)},
		{time.Date(2026, 12, 6, 0, 0, 0, 5, time.UTC), time.Date(2026, 12, 6, 0, 0, 0, 5, time.UTC)},
	} {
		if got := clampTime(c.in); !got.Equal(c.want) || got.UnixNano() != c.want.UnixNano() {
			t.Errorf("clampTime(%v) = %v; want %v", c.in, got, c.want)
		}
	}
	if addSat(math.MaxInt64-1, 5) != math.MaxInt64 || addSat(1<<62, 1<<62) != math.MaxInt64 || addSat(2, 3) != 5 {
		t.Errorf("addSat does not saturate")
	}
}
