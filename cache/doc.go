// Package cache is the block cache between the filesystem and the grid: a
// byte-bounded, scan-resistant memory cache of plaintext blocks and frames over a
// byte-bounded disk cache of sealed blocks, in front of a Fetcher
// (*remote.Grid).
//
// Two ways to read. ReadBlock returns a whole block (sequential reads and
// read-ahead: one fetch of the whole sealed block, cached in memory and on
// disk). ReadAt returns a range of a block at the cost of the frames
// (remote.FrameSize, 32 KiB of plaintext each) that hold it: from memory,
// else a ranged read of the block's file in the disk tier, else one ranged
// read of the frame from the grid. Frame indexes (where a block's frames
// lie) are kept in memory for the last few thousand blocks read; the first
// ReadAt of a block not on disk reads its index from the grid first. Frames
// read from the grid are kept in memory only: the disk tier holds whole
// sealed blocks.
//
// # What it owns
//
// The directory Options.Dir (the data dir's cache/): Dir/blocks/ab/<id> holds
// the sealed bytes of one block, Dir/tmp holds files being written (emptied
// at New). Blocks are written to Dir/tmp and renamed into place, or handed
// over whole: the journal's staging file of a block whose upload has
// committed is renamed in (Adopt), so a file written on this drive is read
// from local disk after a remount, not fetched back. The index is
// rebuilt by scanning Dir at New, so the disk tier survives a remount. Only
// sealed bytes reach the disk: a cache file is no more readable than a shard
// on a node, and every one is authenticated again (Fetcher.OpenBlock) when it
// is read; a file that fails is deleted and the block fetched from the grid.
//
// # What it promises
//
//   - Only grid-durable blocks live here. Dirty and staged data is the
//     journal's and never enters the cache, so evicting or clearing anything
//     here can never lose data: every block can be fetched again from the
//     grid. Eviction (per tier, until the tier fits its byte budget) and
//     Clear never touch a pinned block on disk.
//   - Scan resistance: each tier is a segmented LRU in the manner of 2Q. A
//     block enters probation; read again at least half a second after it
//     came in (reads in a row are one use) it moves to a protected segment
//     of at most 3/4 of the budget; probation's oldest are evicted first.
//     Reading a tree larger than the cache once (grep -r, a backup) churns
//     probation only and leaves the blocks used again and again in place.
//   - Many readers missing one block cause one load (disk tier, else one
//     FetchBlock); many missing one frame not on disk, one grid read of
//     it. A reader whose ctx ends returns ctx.Err() at once; the fetch
//     goes on for the others and is cancelled when no reader waits.
//     Errors are not cached.
//   - ReadBlock returns a slice shared by the cache and every reader of the
//     block: it is read-only. The cache never modifies or reuses it; it is
//     garbage once nobody holds it. AcquireBlock returns the same bytes
//     with a Hold: they stay valid until its references are released (one,
//     and one more per Retain), after which the cache may reuse the buffer
//     for another block opened from the disk tier (a sequential read then
//     allocates no 4 MiB slice per block). The memory
//     tier counts each buffer's holders (itself, a flight until its
//     waiters have theirs, each acquirer); a buffer ReadBlock handed out
//     is never reused.
//   - Prefetch never waits for a read: it queues read-ahead for a bounded
//     number of workers (Options.ReadAhead), drops what does not fit, and
//     asks the kernel to start reading the queued blocks' files in the
//     disk tier (fadvise WILLNEED, a hint).
//   - The disk tier is only a cache: a failed write is logged and ignored, a
//     full disk pauses disk caching for a while, and neither fails a read.
//     Writes to disk are asynchronous and bounded; a block that does not fit
//     the write queue is written by the fetch that brought it (backpressure,
//     no more memory than the fetch already holds), so a read faster than
//     the writers still leaves every block on disk. Close finishes the
//     queued ones. DiskBytes bounds the blocks in the index; a block being written
//     may take its size again in Dir/tmp until it is renamed.
//
// # Concurrency
//
// All methods are safe for concurrent use. Lock order: Cache.mu, mem.mu,
// disk.mu; indexes.mu is taken alone. No lock is held across a Fetcher
// call; disk file reads happen outside locks, renames and evictions under
// disk.mu. The disk tier keeps the files of the last 512 blocks read by
// ReadAt open (closed when their block leaves the tier: a read racing with
// that is a miss, not an error).
//
// # Memory
//
// MemBytes (default 32 MiB) bounds the plaintext held; beyond it the cache
// holds the frame indexes of the last 4096 blocks read by ReadAt (a few
// hundred bytes each), sealed blocks waiting to be written to disk (8 MiB
// at most: past that a block is not cached on disk) and what running
// fetches hold (read-ahead: ReadAhead blocks, 2 by default, sealed and
// plain).
package cache
