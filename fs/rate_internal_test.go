package fs

import (
	"testing"
	"time"

	"github.com/meshdrive/meshdrive/journal"
)

// Under an upload limit a segment takes many seconds and its bytes become
// durable at once: the rate status shows holds between commits (it was an
// average that fell by 30% a second, so ten seconds after a commit the
// ETA was thirty times too long), and falls to unknown when uploads stall.
func TestRateHoldsBetweenSegmentCommits(t *testing.T) {
	const mib = 1 << 20
	const seg, total = 16 * mib, 64 * mib // 1 MiB/s: a segment every 16 s
	t0 := time.Unix(1e9, 0)
	r := rateSampler{lastAt: t0}
	stats := func(done int64) journal.UploadStats {
		s := journal.UploadStats{DoneBytes: done, QueuedBytes: total - done}
		if s.QueuedBytes > 0 {
			s.QueuedBlocks, s.InFlightBytes = s.QueuedBytes/(4*mib), seg
		}
		return s
	}
	for sec := 1; sec < 64; sec++ {
		done := int64(sec/16) * seg
		r.sample(t0.Add(time.Duration(sec)*time.Second), stats(done))
		if sec < 16 {
			continue // nothing durable yet: unknown is right
		}
		if r.rate < 0.5*mib || r.rate > 2*mib {
			t.Fatalf("%d s in, %d MiB durable at 1 MiB/s: rate %.0f B/s, want about %d", sec, done/mib, r.rate, mib)
		}
	}
	// Stalled after 48 MiB: the rate falls, then is unknown.
	for sec := 64; sec < 200; sec++ {
		r.sample(t0.Add(time.Duration(sec)*time.Second), stats(48*mib))
	}
	if r.rate != 0 {
		t.Fatalf("no commit for 150 s: rate %.0f B/s, want 0 (unknown)", r.rate)
	}
}
