package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// lineEvery is how often progress is printed as a plain line when the
// output is not a terminal (a log file, a service's journal, a pipe).
const lineEvery = 2 * time.Second

// countLines prints counted progress (check, drain) as plain lines, for
// output that is not a terminal, where a bar would be noise: the first
// report of each phase, then at most one line every lineEvery, and the
// last one (done == total).
type countLines struct {
	w        io.Writer
	what     string // the counted unit: "segments"
	phase    string
	done     int
	lastLine time.Time
}

func (c *countLines) report(phase string, done, total int) {
	now := time.Now()
	same := phase == c.phase
	if same && (done == c.done || (done < total && now.Sub(c.lastLine) < lineEvery)) {
		return
	}
	c.phase, c.done, c.lastLine = phase, done, now
	fmt.Fprintf(c.w, "%s: %d of %d %s\n", phase, done, total, c.what)
}

// steps shows what a command that has no bar to fill is doing (passwd):
// on a terminal one live line, rewritten in place and cleared at the end;
// elsewhere one plain line per step.
type steps struct {
	w    io.Writer
	tty  bool
	live bool // a live line is on the terminal
}

func newSteps(w io.Writer) *steps { return &steps{w: w, tty: isTerminal(w)} }

func (s *steps) say(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if !s.tty {
		fmt.Fprintln(s.w, msg)
		return
	}
	fmt.Fprintf(s.w, "\r\033[K%s", msg)
	s.live = true
}

// clear removes the live line, before the command's result is printed.
func (s *steps) clear() {
	if s.live {
		fmt.Fprint(s.w, "\r\033[K")
		s.live = false
	}
}

// countBar is the bar counted progress shows on a terminal.
func countBar(w io.Writer, total int, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
		progressbar.OptionFullWidth(), progressbar.OptionThrottle(100*time.Millisecond))
}
