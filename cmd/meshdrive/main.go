package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// exitError carries the exit code of a failed subcommand. Its message is
// printed as one line "meshdrive: MESSAGE".
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a bad command line (exit code 2).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// env is what a subcommand gets from the process: arguments, streams and
// environment lookups, so tests and a second instance need no globals.
type env struct {
	args   []string
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

type command struct {
	name    string
	summary string
	run     func(e *env) error
}

func commands() []command {
	return []command{
		{"init", "create a drive: data dir, wrapped key, node list", runInit},
		{"mount", "mount the drive at MOUNTPOINT (creates a default drive on first use)", runMount},
		{"unmount", "unmount the drive at MOUNTPOINT", runUnmount},
		{"status", "show the drive, its nodes, the upload queue and the cache", runStatus},
		{"sync", "wait until everything written so far is grid-durable", runSync},
		{"cache", "cache clear: drop clean cached blocks", runCache},
		{"pin", "keep files and folders on this machine (offline)", runPin},
		{"unpin", "let pinned files and folders be evicted again", runUnpin},
		{"passwd", "change the drive's passphrase (no data is rewritten)", runPasswd},
		{"recover", "rebuild a lost drive on this machine from the passphrase and one node", runRecover},
		{"gc", "collect garbage: deleted data leaves the grid", runGC},
		{"snapshot", "snapshot create | list | delete | restore: the drive's past, browsable under .snapshots", runSnapshot},
		{"check", "check (--verify, --repair) the shards of every file: healthy, degraded or unrecoverable", runCheck},
		{"web-url", "print a single-use login address for the web app", runWebURL},
		{"node", "node serve | list | add | drain | remove: run a storage node, or change the drive's nodes", runNode},
	}
}

func main() {
	e := &env{args: os.Args[1:], stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(e))
}

func run(e *env) int { return finish(e, dispatch(e)) }

// finish prints err, when there is one, as one line on stderr, and
// returns the exit code.
func finish(e *env, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	msg := plainText(strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
	fmt.Fprintf(e.stderr, "meshdrive: %s\n", msg)
	return code
}

func dispatch(e *env) error {
	if len(e.args) == 0 {
		topUsage(e.stderr)
		return usageError("no command given")
	}
	name := e.args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		topUsage(e.stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			sub := *e
			sub.args = e.args[1:]
			return c.run(&sub)
		}
	}
	topUsage(e.stderr)
	return usageError("unknown command %q", name)
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, `meshdrive: a drive on an erasure-coded storage grid.

Usage: meshdrive COMMAND [flags] [args]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run "meshdrive COMMAND --help" for a command's flags.
The drive's data dir is --data DIR, else $MESHDRIVE_DATA, else
$XDG_DATA_HOME/meshdrive, else ~/.local/share/meshdrive.
`)
}

// newFlagSet makes a FlagSet whose --help prints usage (the synopsis line
// and the description) followed by the flags.
func newFlagSet(e *env, name, synopsis, desc string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: meshdrive %s\n\n%s\n", synopsis, strings.TrimSpace(desc))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args allowing flags after positional arguments
// (meshdrive mount ~/Drive --read-only), and prints help on stdout.
func parseFlags(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil, flag.ErrHelp
		}
	}
	var pos []string
	fs.SetOutput(io.Discard) // errors are reported in one line below
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError("%v; see meshdrive %s --help", err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// dataDirFlag registers --data and returns a function giving the resolved
// data dir after parsing.
func dataDirFlag(e *env, fs *flag.FlagSet) func() (string, error) {
	d := fs.String("data", "", "the drive's data dir (default $MESHDRIVE_DATA, else $XDG_DATA_HOME/meshdrive, else ~/.local/share/meshdrive)")
	return func() (string, error) { return resolveDataDir(e, *d) }
}

func resolveDataDir(e *env, flagVal string) (string, error) {
	dir := flagVal
	if dir == "" {
		dir = e.getenv("MESHDRIVE_DATA")
	}
	if dir == "" {
		if x := e.getenv("XDG_DATA_HOME"); x != "" {
			dir = filepath.Join(x, "meshdrive")
		}
	}
	if dir == "" {
		home := e.getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no data dir: set --data DIR or MESHDRIVE_DATA (%w)", err)
			}
			home = h
		}
		dir = filepath.Join(home, ".local", "share", "meshdrive")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data dir %s: %w", dir, err)
	}
	return abs, nil
}

// newLogger makes the text logger on stderr at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}
