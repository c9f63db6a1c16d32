package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// serveEnv, set to "1" in a process's environment, makes this binary (or
// the test binary, see main_test.go) serve one mount instead of running
// the benchmark.
const serveEnv = "MESHBENCH_SERVE"

// Kinds of filesystem a child serves.
const (
	kindLoopback = "loopback" // A: go-fuse loopback as is (passthrough when offered)
	kindPlain    = "plain"    // B: loopback with passthrough refused
	kindDurable  = "durable"  // D: B that fsyncs a written file at close
	kindDrive    = "drive"    // C: the meshdrive drive over a local grid
)

// Shape of the local grid the drive is measured on.
const (
	gridK = 4
	gridM = 2
)

// mounted is one mounted filesystem as the child sees it.
type mounted interface {
	// Settle waits until background work caused by earlier operations is
	// done (for the drive: everything grid-durable).
	Settle(ctx context.Context) error
	// ClearCache drops the daemon's own caches (the drive's block cache).
	ClearCache() error
	// Counters reports read and write requests that reached the daemon
	// and the fsyncs its flushes made,
	// or -1 when the filesystem does not count them.
	Counters() (reads, writes, fsyncs int64)
	// Info describes the mount in one line (e.g. "passthrough=on").
	Info() string
	// Unmount unmounts (lazily if busy) and releases everything; it is
	// called once.
	Unmount() error
}

// serveArgs are the flags of a child.
type serveArgs struct {
	kind     string
	mnt      string
	backing  string // loopback, plain and durable: the directory served
	data     string // drive: the data dir (journal, cache, nodes)
	profDir  string // where CPU profiles go; "" = none
	cacheMem int64  // drive: memory cache bytes (0 = drive default)
}

// serve runs a child: mount, answer commands on stdin, unmount. It
// returns the process exit code.
func serve(args []string, stdin io.Reader, stdout io.Writer) int {
	var a serveArgs
	f := flag.NewFlagSet("meshbench serve", flag.ContinueOnError)
	f.StringVar(&a.kind, "kind", "", "loopback, plain, durable or drive")
	f.StringVar(&a.mnt, "mnt", "", "mount point")
	f.StringVar(&a.backing, "backing", "", "directory served by loopback, plain and durable")
	f.StringVar(&a.data, "data", "", "drive data directory")
	f.StringVar(&a.profDir, "profdir", "", "directory for CPU profiles")
	f.Int64Var(&a.cacheMem, "cache-mem", 0, "drive memory cache bytes")
	if err := f.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).
		With("child", a.kind)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := mountKind(ctx, a, log)
	if err != nil {
		fmt.Fprintf(stdout, "err %s\n", oneLine(err))
		return 1
	}
	code := 0
	remount := func(wipe bool) error {
		if err := m.Unmount(); err != nil {
			return fmt.Errorf("remount: %w", err)
		}
		if wipe && a.kind == kindDrive {
			if err := os.RemoveAll(filepath.Join(a.data, "cache")); err != nil {
				return fmt.Errorf("remount: wipe the disk cache: %w", err)
			}
		}
		nm, err := mountKind(ctx, a, log)
		if err != nil {
			return fmt.Errorf("remount: %w", err)
		}
		m = nm
		// The old mount's garbage is no part of the new one's memory.
		debug.FreeOSMemory()
		return nil
	}
	if err := answer(ctx, a, func() mounted { return m }, remount, stdin, stdout); err != nil {
		log.Error("serving commands", "err", err)
		code = 1
	}
	if err := m.Unmount(); err != nil {
		log.Error("unmount", "mnt", a.mnt, "err", err)
		code = 1
	}
	return code
}

// unmountOrDetach runs unmount; when that fails (busy: a process still
// works in the mount, e.g. a cp left behind by a killed driver) it detaches
// the mount lazily, so nothing stays mounted once the daemon exits.
func unmountOrDetach(mnt string, unmount func() error) error {
	err := unmount()
	if err == nil || !isMountPoint(mnt) {
		return err
	}
	if derr := unix.Unmount(mnt, unix.MNT_DETACH); derr != nil {
		return errors.Join(err, fmt.Errorf("lazy unmount %s: %w", mnt, derr))
	}
	return fmt.Errorf("detached %s lazily after: %w", mnt, err)
}

func mountKind(ctx context.Context, a serveArgs, log *slog.Logger) (mounted, error) {
	if a.mnt == "" {
		return nil, errors.New("serve: --mnt is required")
	}
	switch a.kind {
	case kindLoopback, kindPlain, kindDurable:
		if a.backing == "" {
			return nil, errors.New("serve: --backing is required for loopback, plain and durable")
		}
		return mountLoopback(a.mnt, a.backing, a.kind == kindLoopback, a.kind == kindDurable)
	case kindDrive:
		if a.data == "" {
			return nil, errors.New("serve: --data is required for drive")
		}
		return mountDrive(ctx, a, log)
	}
	return nil, fmt.Errorf("serve: unknown kind %q (want loopback, plain, durable or drive)", a.kind)
}

// answer prints "ready INFO", then answers one line per command until
// "quit", stdin's end or SIGTERM/SIGINT:
//
//	begin NAME    start a CPU profile PROFDIR/NAME.pprof and a CPU clock, and
//	              return freed memory to the system and reset the peak RSS (VmHWM)
//	end           stop them; answers "ok cpu=SECONDS reads=N writes=N fsyncs=N rss=BYTES"
//	settle        wait for background work (the drive's uploads and metadata record)
//	clear         drop the daemon's own cache
//	remount MODE  unmount and mount again (the drive: same data dir and key);
//	              MODE "wipe" also deletes the drive's disk cache, "keep" does not
//	quit          unmount and exit
//
// Every answer is one line starting "ok" or "err". cur returns the mount
// being served (remount replaces it).
func answer(ctx context.Context, a serveArgs, cur func() mounted, remount func(wipe bool) error, stdin io.Reader, stdout io.Writer) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	if _, err := fmt.Fprintf(stdout, "ready %s\n", cur().Info()); err != nil {
		return err
	}
	var (
		prof       *os.File
		cpu0       time.Duration
		r0, w0, f0 int64
		profiling  bool
	)
	stopProf := func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
			prof = nil
		}
	}
	defer stopProf()
	stopWatch := func() {}
	defer func() { stopWatch() }()
	for {
		var line string
		select {
		case s := <-sig:
			return fmt.Errorf("stopped by %v", s)
		case l, ok := <-lines:
			if !ok {
				return nil // the driver is gone: unmount
			}
			line = l
		}
		cmd, arg, _ := strings.Cut(line, " ")
		var reply string
		switch cmd {
		case "begin":
			stopProf()
			reply = "ok"
			if a.profDir != "" {
				p, err := startProfile(filepath.Join(a.profDir, arg+".pprof"))
				if err != nil {
					reply = "err " + oneLine(err)
				}
				prof = p
			}
			// Memory the last workload freed goes back to the system first,
			// so that this workload's peak is its own.
			debug.FreeOSMemory()
			if err := resetPeakRSS(); err != nil {
				reply = "err " + oneLine(err)
			}
			stopWatch()
			stopWatch = watchHeap(a.kind, arg)
			cpu0 = cpuTime()
			r0, w0, f0 = cur().Counters()
			profiling = true
		case "end":
			stopProf()
			stopWatch()
			stopWatch = func() {}
			if !profiling {
				reply = "err end without begin"
				break
			}
			profiling = false
			r, w, fs := cur().Counters()
			if r >= 0 {
				r, w, fs = r-r0, w-w0, fs-f0
			}
			reply = fmt.Sprintf("ok cpu=%.3f reads=%d writes=%d fsyncs=%d rss=%d", (cpuTime() - cpu0).Seconds(), r, w, fs, peakRSS())
		case "settle":
			reply = okOrErr(cur().Settle(ctx))
		case "clear":
			reply = okOrErr(cur().ClearCache())
		case "remount":
			if arg != "wipe" && arg != "keep" {
				reply = fmt.Sprintf("err remount %q: want wipe or keep", arg)
				break
			}
			reply = okOrErr(remount(arg == "wipe"))
		case "quit":
			_, err := fmt.Fprintln(stdout, "ok")
			return err
		default:
			reply = fmt.Sprintf("err unknown command %q", cmd)
		}
		if _, err := fmt.Fprintln(stdout, reply); err != nil {
			return err
		}
	}
}

// resetPeakRSS makes VmHWM start again from the current RSS.
func resetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5\n"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}

// peakRSS is VmHWM of this process in bytes (-1 when unknown).
func peakRSS() int64 {
	kb := statusKiB("VmHWM:")
	if kb < 0 {
		return -1
	}
	return kb << 10
}

func startProfile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return f, nil
}

// cpuTime is the user+system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func okOrErr(err error) string {
	if err != nil {
		return "err " + oneLine(err)
	}
	return "ok"
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
