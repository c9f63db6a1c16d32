// Command meshbench measures the meshdrive drive against go-fuse's loopback
// filesystem on the same disk, in one run, and writes the figures and their
// ratios as the "## Drive vs loopback" section of docs/BENCHMARKS.md.
//
// Four filesystems are mounted side by side under one scratch directory:
//
//   - loopback (A): go-fuse's fs.NewLoopbackRoot as is. As root on a kernel
//     with FUSE passthrough, its files hand their fd to the kernel
//     (FilePassthroughFder), so reads and writes never reach the daemon:
//     the kernel's ceiling.
//   - plain (B): the same loopback whose files answer PassthroughFd with
//     false, so the daemon serves every byte: a plain FUSE daemon.
//   - durable (D): B whose flush fsyncs a file written since the last
//     flush: the drive's promise for close until 2026-12 (data and
//     metadata on local disk when close returns), kept by a daemon that
//     does nothing else. The drive's close now commits to its journal
//     without an fsync (a group commit fsyncs within a second), so D
//     does more than the drive promises.
//   - drive (C): fs.OpenDrive + Drive.Mount over a local grid of six
//     dirstores (k=4, m=2) in the scratch directory, sealed with a random
//     key.
//
// Each filesystem is served by a child process (this binary re-executed with
// MESHBENCH_SERVE=1) so that its CPU time and CPU profile are the daemon's
// alone, and so that a crash of one daemon cannot take the driver's mounts
// with it. The driver talks to a child over its stdin and stdout, one line
// per command; a child unmounts when told, when its stdin closes (the driver
// died) or on SIGTERM, and the driver lazily unmounts whatever a dead child
// left behind.
//
// Every workload runs on every mount in turn before the next workload
// starts, so background noise on a shared machine falls on all alike;
// the ratios inside one run are the result, absolute figures are noisy.
// Before the mounts start, the driver touches --warm-mem of anonymous memory
// once (8 GiB by default, at most half of MemAvailable; none with --quick),
// one byte per 4 KiB page, and unmaps it: a VM pays a large cost the first
// time its guest uses a page of memory, and without this whichever mount
// first needs new page-cache pages would pay it alone.
// After each workload, and after a workload's untimed preparation (the
// files unlink removes), the driver waits until the drive is grid-durable
// (uploads done, metadata record shipped) and calls sync(2) after the
// workload, so one workload's background work does not bill the next.
//
// The remount rows unmount every filesystem and mount it again (the drive
// on the same data dir and key; "wiped" also deletes its disk cache), drop
// the kernel's caches, then read the big file (sequentially, disk cache
// kept) or do the random 4 KiB reads: what a read costs when no memory
// holds the file. The first of them, right after the write (and its
// uploads), reads the file as a user opens one just copied in; the
// others come after the cold read, which wiped the drive's cache and
// filled it again from the grid. Every workload reports each daemon's peak
// RSS (VmHWM, reset at the workload's start). To see what holds that
// memory, set MESHBENCH_HEAPPROF=DIR: each serving child then writes
// DIR/KIND-WORKLOAD.heap (a pprof heap profile) and .status (its
// /proc status, resident memory per mapped file and the Go runtime's
// classes) each time its RSS passes a new high by 2 MiB, so the last
// pair is from near the peak (heapwatch.go; a debugging aid, not for
// timed runs).
//
// Cold figures drop the kernel's caches (/proc/sys/vm/drop_caches, root
// only) and, for the drive, its block cache, so blocks come from the grid.
// The deletes come last: unlink of --unlinks empty files made (untimed)
// in a directory of their own, and rm -rf of the copied source tree; what
// a file system does in the background after the call returns (the
// drive's reaper, which frees deleted files' blocks) is not timed, though
// it shares the CPUs with the calls while they run.
// Workloads that change nothing (reads, stat, readdir) run --rounds times
// and the best round counts, except the read just after the write (once:
// only the first read finds the file just written). At the end the big file is read back from
// every mount with all caches dropped and compared byte for byte with what
// was written; a mismatch fails the run. The section is written only when
// the whole run succeeded.
//
// A build with -tags nodrive leaves the drive out (A, B and D only), for
// measuring the baseline while the drive's packages do not build.
package main
