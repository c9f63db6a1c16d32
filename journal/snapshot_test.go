package journal

import (
	"testing"
	"time"
)

// TestRetentionKeeps applies a short policy to a made-up history and
// checks exactly which checkpoints stay.
func TestRetentionKeeps(t *testing.T) { bubble(t, testRetentionKeeps) }

func testRetentionKeeps(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r, err := ParseRetention("last=10m, hourly=3h, daily=2d")
	if err != nil {
		t.Fatal(err)
	}
	var rows []mlogRow
	add := func(seq uint64, ago time.Duration, name string) {
		rows = append(rows, mlogRow{seq: seq, created: now.Add(-ago), name: name, named: name != ""})
	}
	add(1, 72*time.Hour, "")        // too old for daily
	add(2, 40*time.Hour, "")        // daily: the newest of 2026-12-02
	add(3, 30*time.Hour, "keep-me") // named
	add(4, 26*time.Hour, "")        // daily: the newest of 2026-12-03
	add(5, 150*time.Minute, "")     // hourly 09:00-10:00 (09:30)
	add(6, 140*time.Minute, "")     // hourly 09:40: newer in the same hour
	add(7, 90*time.Minute, "")      // hourly 10:30
	add(8, 30*time.Minute, "")      // hourly 11:30, older than 10m
	add(9, 5*time.Minute, "")       // last
	add(10, 1*time.Minute, "")      // last, and the newest
	rows[5].deleted = true          // seq 6 deleted by hand: seq 5 wins its hour
	got := r.kept(rows, now)
	want := []uint64{2, 3, 4, 5, 7, 9, 10}
	if len(got) != len(want) {
		t.Fatalf("kept %v, want %v", got, want)
	}
	for _, s := range want {
		if !got[s] {
			t.Errorf("seq %d not kept (kept %v)", s, got)
		}
	}
	if got[8] {
		t.Errorf("seq 8 kept, but 9 is newer in its hour")
	}
	for _, bad := range []string{"last", "forever=1d", "daily=-1d", "hourly=abc", "daily=NaNd", "daily=Infd", "weekly=1e300w", "daily=200000d"} {
		if _, err := ParseRetention(bad); err == nil {
			t.Errorf("ParseRetention(%q) accepted", bad)
		}
	}
	if d, err := ParseRetention(DefaultRetention.String()); err != nil || d != DefaultRetention {
		t.Errorf("the default does not round-trip: %v %v", d, err)
	}
}
