package main

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
)

// profileSummary is the drive's CPU profile for the workload where it
// trails the plain daemon most.
type profileSummary struct {
	workload string
	ratio    float64
	cpu      float64
	secs     float64
	plainCPU float64
	top      string
	cum      string
}

func summarizeProfile(ctx context.Context, r *results, profDir string) *profileSummary {
	worst := r.biggestGap()
	if worst == nil {
		return nil
	}
	c, p := worst.got[kindDrive], worst.got[kindPlain]
	s := &profileSummary{workload: worst.wl.title, ratio: worst.ratio(kindDrive, kindPlain), cpu: c.use.CPU, secs: c.secs, plainCPU: p.use.CPU}
	prof := filepath.Join(profDir, c.prof)
	var err error
	if s.top, err = pprofTop(ctx, prof, false, 20); err != nil {
		r.notes = append(r.notes, err.Error())
		return nil
	}
	s.cum, _ = pprofTop(ctx, prof, true, 20)
	return s
}

// pprofTop runs `go tool pprof -top` on a profile and keeps its header and
// first entries.
func pprofTop(ctx context.Context, prof string, cum bool, nodes int) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", nodes)}
	if cum {
		args = append(args, "-cum")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, goBin, append(args, prof)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w: %s", filepath.Base(prof), err, strings.TrimSpace(stderr.String()))
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		// Drop the lines that name the binary's path or the time.
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") || strings.HasPrefix(l, "Type:") || l == "" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n") + "\n", nil
}

// hotSpots are the drive's busiest functions in one workload's profile.
type hotSpots struct {
	title     string
	ratio     float64
	cpu, secs float64
	funcs     []string // "journal.(*Journal).SetAttr 58%"
}

// summarizeHot lists, for every row where the drive misses its target
// (or trails the plain daemon by more than half), the drive's own
// functions with the most cumulative CPU.
func summarizeHot(ctx context.Context, r *results, profDir string) []hotSpots {
	var out []hotSpots
	for _, rw := range r.rows {
		q := rw.ratio(kindDrive, kindPlain)
		if math.IsNaN(q) || (q >= rw.wl.target && q >= 0.5) {
			continue
		}
		c := rw.got[kindDrive]
		top, err := pprofTop(ctx, filepath.Join(profDir, c.prof), true, 400)
		if err != nil {
			r.notes = append(r.notes, err.Error())
			continue
		}
		h := hotSpots{title: rw.wl.title, ratio: q, cpu: c.use.CPU, secs: c.secs}
		last := ""
		for _, l := range strings.Split(top, "\n") {
			f := strings.Fields(l)
			const pkg = "github.com/meshdrive/meshdrive/"
			if len(f) < 6 || !strings.HasPrefix(f[5], pkg) {
				continue
			}
			entry := fmt.Sprintf("`%s` %s", strings.TrimPrefix(f[5], pkg), f[4])
			// A call chain shows as a run of equal cumulative shares:
			// keep only its deepest function.
			if n := len(h.funcs); n > 0 && f[4] == last {
				h.funcs[n-1] = entry
				continue
			}
			if len(h.funcs) == 5 {
				break
			}
			h.funcs = append(h.funcs, entry)
			last = f[4]
		}
		if len(h.funcs) > 0 {
			out = append(out, h)
		}
	}
	return out
}
