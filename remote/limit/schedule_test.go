package limit

import (
	"strings"
	"testing"
	"time"
)

func at(hhmm string) time.Time {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSchedule(t *testing.T) {
	base := Rates{Up: 7, Down: 9}
	for _, c := range []struct {
		text string
		at   map[string]Rates
	}{
		{"08:00-18:00 1MiB/s, otherwise unlimited", map[string]Rates{
			"07:59": {}, "08:00": {Up: 1 << 20}, "17:59": {Up: 1 << 20}, "18:00": {}}},
		{"22:00-06:00 down 2MiB/s, 06:00-22:00 up 512KiB/s down 1M", map[string]Rates{
			"23:30": {Down: 2 << 20}, "05:59": {Down: 2 << 20}, "06:00": {Up: 512 << 10, Down: 1e6}}},
		{"09:00-10:00 unlimited, 08:00-12:00 10K", map[string]Rates{ // first match wins; else base
			"09:30": {}, "08:30": {Up: 1e4}, "13:00": base}},
		{"00:00-24:00 3B/s", map[string]Rates{"00:00": {Up: 3}, "23:59": {Up: 3}}},
	} {
		s, err := ParseSchedule(c.text)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		for hhmm, want := range c.at {
			if got := s.At(at(hhmm), base); got != want {
				t.Errorf("%q at %s: %+v, want %+v", c.text, hhmm, got, want)
			}
		}
	}
	if s, err := ParseSchedule("  "); s != nil || err != nil {
		t.Errorf("empty schedule: %v %v", s, err)
	}
	for _, bad := range []string{
		"8-18 1MiB/s", "08:00-18:00", "08:00-18:00 fast", "08:00-08:00 1M", "25:00-01:00 1M",
		"08:00-18:00 up 1M up 2M", "08:00-18:00 sideways 1M", "otherwise 1M, otherwise 2M", "08:00-18:00 -1M",
		"08:60-09:00 1M", ",",
	} {
		_, err := ParseSchedule(bad)
		if err == nil {
			t.Errorf("%q parsed; want an error", bad)
		} else if !strings.Contains(err.Error(), "example:") {
			t.Errorf("%q: error %q does not show how to write one", bad, err)
		}
	}
}

// FuzzParseSchedule: any text either fails or parses to a schedule whose
// String parses back to the same rates at every minute of the day.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"08:00-18:00 1MiB/s, otherwise unlimited", "22:00-06:00 up 1K down 2.5MiB/s", "otherwise 0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSchedule(text)
		if err != nil || s == nil {
			return
		}
		again, err := ParseSchedule(s.String())
		if err != nil {
			t.Fatalf("%q parsed, its String %q does not: %v", text, s.String(), err)
		}
		base := Rates{Up: 1, Down: 2}
		day := at("00:00")
		for m := 0; m < 24*60; m += 7 {
			tm := day.Add(time.Duration(m) * time.Minute)
			if a, b := s.At(tm, base), again.At(tm, base); a != b {
				t.Fatalf("%q at %s: %+v; through String %q: %+v", text, tm.Format("15:04"), a, s.String(), b)
			}
		}
	})
}

// TestRateString: status shows a rate as a person wrote it (1MiB/s, not
// 1048576/s), and ParseRate reads it back to the same value.
func TestRateString(t *testing.T) {
	for bps, want := range map[float64]string{0: "unlimited", 1 << 20: "1MiB/s", 512 << 10: "512KiB/s",
		2.5 * (1 << 20): "2560KiB/s", 20e6: "20M/s", 1500: "1500/s", 3: "3/s", 1.5: "1.5/s", 1 << 40: "1TiB/s"} {
		got := RateString(bps)
		if got != want {
			t.Errorf("RateString(%v) = %q, want %q", bps, got, want)
		}
		if back, err := ParseRate(got); err != nil || back != bps {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", got, back, err, bps)
		}
	}
}
