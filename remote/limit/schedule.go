package limit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Schedule says which rates are in force at what time of day: windows
// tried in order, the first that holds the time wins, else Otherwise (when
// set), else the caller's base rates.
//
// Its text form (ParseSchedule) is rules separated by commas:
//
//	08:00-18:00 1MiB/s, otherwise unlimited
//	22:00-06:00 up unlimited down 2MiB/s, 06:00-22:00 up 512KiB/s
//
// A window is HH:MM-HH:MM in local time (start included, end excluded;
// one that ends before it starts spans midnight). Its rates are
// "unlimited", one rate (uploads only), or "up R" and/or "down R" (a
// direction not named is unlimited). A rate is bytes per second with an
// optional suffix (K, M, G: powers of 1000; KiB, MiB, GiB: of 1024) and
// optional "/s".
type Schedule struct {
	Windows   []Window
	Otherwise *Rates
}

// Window is one rule: from Start to End (minutes after midnight).
type Window struct {
	Start, End int
	Rates      Rates
}

// At returns the rates in force at t (local clock of t), base when no rule
// holds.
func (s *Schedule) At(t time.Time, base Rates) Rates {
	if s == nil {
		return base
	}
	m := t.Hour()*60 + t.Minute()
	for _, w := range s.Windows {
		if w.holds(m) {
			return w.Rates
		}
	}
	if s.Otherwise != nil {
		return *s.Otherwise
	}
	return base
}

func (w Window) holds(m int) bool {
	if w.Start <= w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End // spans midnight
}

// String is the schedule's text form.
func (s *Schedule) String() string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, w := range s.Windows {
		parts = append(parts, fmt.Sprintf("%02d:%02d-%02d:%02d %s", w.Start/60, w.Start%60, w.End/60, w.End%60, ratesString(w.Rates)))
	}
	if s.Otherwise != nil {
		parts = append(parts, "otherwise "+ratesString(*s.Otherwise))
	}
	return strings.Join(parts, ", ")
}

func ratesString(r Rates) string {
	switch {
	case r.Up <= 0 && r.Down <= 0:
		return "unlimited"
	case r.Down <= 0:
		return "up " + RateString(r.Up)
	case r.Up <= 0:
		return "down " + RateString(r.Down)
	}
	return "up " + RateString(r.Up) + " down " + RateString(r.Down)
}

// RateString renders bytes/s ("unlimited" for 0) as a person writes it
// and exactly, so that ParseRate reads it back to the same value: 1MiB/s,
// 512KiB/s, 20M/s, and plain bytes when no unit divides the rate.
func RateString(bps float64) string {
	if bps <= 0 {
		return "unlimited"
	}
	if bps == math.Trunc(bps) && bps < 1<<62 {
		for _, u := range []struct {
			suffix string
			div    float64
		}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3}} {
			if q := bps / u.div; q >= 1 && q == math.Trunc(q) {
				return strconv.FormatFloat(q, 'f', -1, 64) + u.suffix + "/s"
			}
		}
	}
	return strconv.FormatFloat(bps, 'f', -1, 64) + "/s"
}

// ParseSchedule reads the text form (see Schedule). "" is no schedule
// (nil). Errors say which rule is wrong and how to write one.
func ParseSchedule(text string) (*Schedule, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, nil
	}
	s := &Schedule{}
	for i, rule := range strings.Split(text, ",") {
		f := strings.Fields(rule)
		if len(f) < 2 {
			return nil, ruleError(i, rule, "want a time window (or otherwise) and a rate")
		}
		r, err := parseRates(f[1:])
		if err != nil {
			return nil, ruleError(i, rule, err.Error())
		}
		if strings.EqualFold(f[0], "otherwise") {
			if s.Otherwise != nil {
				return nil, ruleError(i, rule, "a second otherwise")
			}
			s.Otherwise = &r
			continue
		}
		from, to, ok := strings.Cut(f[0], "-")
		start, err1 := parseClock(from)
		end, err2 := parseClock(to)
		if !ok || err1 != nil || err2 != nil || start == 24*60 {
			return nil, ruleError(i, rule, "want a time window like 08:00-18:00")
		}
		if start == end {
			return nil, ruleError(i, rule, "the window is empty (start and end are the same)")
		}
		s.Windows = append(s.Windows, Window{Start: start, End: end, Rates: r})
	}
	return s, nil
}

func ruleError(i int, rule, why string) error {
	return fmt.Errorf("bandwidth schedule, rule %d %q: %s (example: \"08:00-18:00 1MiB/s, otherwise unlimited\")", i+1, strings.TrimSpace(rule), why)
}

// parseClock reads HH:MM (00:00 to 24:00) as minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || hh == 24 && mm != 0 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return hh*60 + mm, nil // 24:00 (1440) only ends a window
}

// parseRates reads "unlimited", "R", or "up R [down R]" / "down R [up R]".
func parseRates(f []string) (Rates, error) {
	var r Rates
	if len(f) == 1 {
		v, err := ParseRate(f[0])
		r.Up = v
		return r, err
	}
	if len(f)%2 != 0 {
		return r, fmt.Errorf("want one rate, or up RATE and/or down RATE")
	}
	seen := map[string]bool{}
	for i := 0; i < len(f); i += 2 {
		dir := strings.ToLower(f[i])
		if (dir != "up" && dir != "down") || seen[dir] {
			return r, fmt.Errorf("want up RATE and/or down RATE, got %q", f[i])
		}
		seen[dir] = true
		v, err := ParseRate(f[i+1])
		if err != nil {
			return r, err
		}
		if dir == "up" {
			r.Up = v
		} else {
			r.Down = v
		}
	}
	return r, nil
}

// ParseRate reads a rate in bytes per second: "unlimited" or "0" (0), or a
// size (ParseSize) with an optional "/s".
func ParseRate(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	if strings.EqualFold(t, "unlimited") {
		return 0, nil
	}
	v, err := ParseSize(t)
	if err != nil {
		return 0, fmt.Errorf("bad rate %q: want bytes per second like 1MiB/s, or unlimited", s)
	}
	return v, nil
}

// ParseSize reads a byte count: a number with an optional suffix (K, M,
// G, T: powers of 1000, B optional; KiB, MiB, GiB, TiB: of 1024), from 0
// to 2^62.
func ParseSize(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if len(s) > len(u.suffix) && strings.HasSuffix(s, u.suffix) {
			mult, s = u.mult, s[:len(s)-len(u.suffix)]
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0) || v*mult > 1<<62 {
		return 0, fmt.Errorf("bad size %q: want a byte count like 4GiB", s)
	}
	return v * mult, nil
}
