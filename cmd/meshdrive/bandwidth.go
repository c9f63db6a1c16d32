package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// scheduleEvery is how often the mount applies the bandwidth schedule
// (re-reading it from the config, so an edit applies without a remount).
const scheduleEvery = 2 * time.Second

// bandwidth is the mount's bandwidth limit: the base rates of the flags,
// the config's schedule, and the limits in force (shared by every store).
type bandwidth struct {
	limits  *remoteopen.Limits
	base    remoteopen.Rates
	dataDir string
	log     *slog.Logger

	mu      sync.Mutex // guards the fields below
	sched   *remoteopen.Schedule
	text    string // the schedule as the config has it
	lastErr string
}

// bandwidthStatus is the bandwidth part of GET /status.
type bandwidthStatus struct {
	Up       float64 `json:"up"`   // bytes/s in force, 0 unlimited
	Down     float64 `json:"down"` // bytes/s in force, 0 unlimited
	BaseUp   float64 `json:"base_up"`
	BaseDown float64 `json:"base_down"`
	Schedule string  `json:"schedule,omitempty"`
	Error    string  `json:"error,omitempty"` // the config's schedule does not parse (the last good one applies)
}

// newBandwidth refuses a config whose schedule does not parse (the mount
// then stops, saying where to fix it).
func newBandwidth(dataDir string, cfg *Config, base remoteopen.Rates, log *slog.Logger) (*bandwidth, error) {
	if _, err := remoteopen.ParseSchedule(cfg.BandwidthSchedule); err != nil {
		return nil, fmt.Errorf("%v in %s; fix bandwidth_schedule there, or remove it to use --upload-limit and --download-limit alone",
			err, filepath.Join(dataDir, configFile))
	}
	b := &bandwidth{base: base, dataDir: dataDir, log: log}
	b.load(cfg)
	b.limits = remoteopen.NewLimits(b.sched.At(time.Now(), base))
	return b, nil
}

// load takes the schedule of cfg (the previous one stays when it does not
// parse: newBandwidth refused that at mount, so only a later edit can be
// wrong).
func (b *bandwidth) load(cfg *Config) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cfg.BandwidthSchedule == b.text && b.lastErr == "" {
		return
	}
	s, err := remoteopen.ParseSchedule(cfg.BandwidthSchedule)
	if err != nil {
		if b.lastErr != err.Error() {
			b.log.Warn("config: bandwidth_schedule does not parse; the previous schedule stays in force until it is fixed", "err", err)
		}
		b.lastErr = err.Error()
		return
	}
	b.sched, b.text, b.lastErr = s, cfg.BandwidthSchedule, ""
}

// source is remoteopen.FollowSchedule's view: the config re-read, its schedule and
// the flags' rates.
func (b *bandwidth) source() (*remoteopen.Schedule, remoteopen.Rates) {
	if cfg, err := loadConfig(b.dataDir); err == nil {
		b.load(cfg)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sched, b.base
}

// follow applies the schedule until ctx ends.
func (b *bandwidth) follow(ctx context.Context) {
	remoteopen.FollowSchedule(ctx, b.limits, b.source, scheduleEvery)
}

func (b *bandwidth) status() bandwidthStatus {
	cur := b.limits.Current()
	b.mu.Lock()
	defer b.mu.Unlock()
	return bandwidthStatus{Up: cur.Up, Down: cur.Down, BaseUp: b.base.Up, BaseDown: b.base.Down,
		Schedule: b.sched.String(), Error: b.lastErr}
}

// printBandwidth prints the bandwidth and pins lines of status.
func printBandwidth(w io.Writer, r *statusReport) {
	b := r.Bandwidth
	fmt.Fprintf(w, "\nbandwidth: up %s, down %s in force", remoteopen.RateString(b.Up), remoteopen.RateString(b.Down))
	if b.Schedule != "" {
		// The flags' limits apply outside the windows only when the
		// schedule has no "otherwise" rule of its own.
		if s, err := remoteopen.ParseSchedule(b.Schedule); err == nil && s.Otherwise != nil {
			fmt.Fprintf(w, " (schedule: %s)", b.Schedule)
		} else {
			fmt.Fprintf(w, " (schedule: %s; outside it up %s, down %s)", b.Schedule, remoteopen.RateString(b.BaseUp), remoteopen.RateString(b.BaseDown))
		}
	}
	fmt.Fprintln(w)
	if b.Error != "" {
		fmt.Fprintf(w, "  the config's bandwidth_schedule is wrong, the previous one applies: %s\n", b.Error)
	}
	if p := r.Pins; p != nil {
		fmt.Fprintf(w, "pins: %s, %s of a %s budget; %d of %d uploaded blocks on this machine\n",
			plural(int64(p.Files), "file", "files"), humanBytes(p.Bytes), humanBytes(p.Budget), p.LocalBlocks, p.Blocks)
	}
}

// offlineLine says since when the drive is offline and what waits:
// "OFFLINE since T (D): 1 file (8 B) to upload and 1926 metadata changes
// wait for the nodes; they go up by themselves when nodes come back".
func offlineLine(r *statusReport, now time.Time) string {
	since := *r.OfflineSince
	head := fmt.Sprintf("OFFLINE since %s (%s)", since.Local().Format(time.DateTime), now.Sub(since).Round(time.Second))
	var waits []string
	if f := r.Uploads.Files; f > 0 {
		waits = append(waits, fmt.Sprintf("%s (%s) to upload", plural(f, "file", "files"), humanBytes(r.Uploads.Bytes)))
	}
	if n := r.Metadata.PendingRows; n > 0 {
		waits = append(waits, plural(n, "metadata change", "metadata changes"))
	}
	switch {
	case len(waits) == 0:
		return head + ": nothing waits for the nodes"
	case len(waits) == 1 && !strings.HasPrefix(waits[0], "1 "):
		return head + ": " + waits[0] + " wait for the nodes; they go up by themselves when nodes come back"
	case len(waits) == 1:
		return head + ": " + waits[0] + " waits for the nodes; it goes up by itself when nodes come back"
	}
	return head + ": " + strings.Join(waits, " and ") + " wait for the nodes; they go up by themselves when nodes come back"
}

// plural is "1 file" or "2 files".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
