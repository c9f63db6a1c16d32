// Package journal is the drive's local durable truth: one sqlite database
// (modernc.org/sqlite, WAL) holding the namespace, each file's block map,
// where every block lives, the upload queue and (later) checkpoints; the
// dirty-data files; the staged sealed blocks; and the uploader that ships
// them to the grid.
//
// # Files in Options.Dir
//
//	journal.db (+ -wal, -shm)  the database (WAL; see Promises for when commits are fsync'd;
//	                           auto_vacuum=INCREMENTAL: the space deletes free goes back to the
//	                           disk in the background, vacuum.go)
//	dirty/<ino>                unflushed writes of one file, sparse, at the file's own offsets,
//	                           once they reach past memDirtyMax (128 KiB; below, they stay in memory,
//	                           and so do up to 32 whole blocks of the journal past it: dirty.go)
//	staging/<block id hex>     one sealed block per file, fsync'd before the commit that refers to it;
//	                           sealed blocks of at most 128 KiB (and half a block) are rows of table staged instead
//
// # Schema (user_version 2; migrations are forward-only, appended to db.go)
//
//	inodes(ino AUTOINCREMENT, mode, uid, gid, rdev, nlink, size, used, atime, mtime, ctime, generation)
//	entries(cookie AUTOINCREMENT, parent, name, ino)  UNIQUE(parent, name); the cookie is the readdir offset
//	xattrs(ino, name, value); symlinks(ino, target)
//	blockmap(ino, idx, block)                          no row = hole
//	blocks(id, plain_len, sealed_len, refcount, state staged|uploaded|garbage, prio, seq, segment, seg_off, seg_len)
//	segments(id, k, m, size, shard_size, chunk_size, nodes json, stored)
//	staged(id, sealed)                                 small staged blocks' sealed bytes (schema 2); after the
//	                                                   upload, kept as a local copy up to Options.KeepSmall (kept.go)
//	checkpoints(seq, created, segment, root)           empty; for the recovery work to come
//	meta(key, value)                                   block_size
//
// Inode numbers and cookies are AUTOINCREMENT: never reused, so a readdir
// offset stays valid while entries come and go (a renamed entry gets a new
// cookie, so a concurrent readdir may see it twice, as POSIX allows).
//
// # Promises
//
// Every commit is one of two kinds. An ordinary commit (synchronous=NORMAL)
// reaches the WAL without an fsync: a killed process loses none of it, a
// power cut may. A durable commit (synchronous=FULL, durableTxLocked)
// fsyncs the WAL, which makes it and every earlier commit survive a power
// cut. Namespace operations (create, link, unlink, rename, setattr,
// xattrs) are one ordinary transaction each, committed when they return.
// Flush (what close does), truncate and the idle flush commit ordinarily
// too: after Flush a killed process loses nothing of the file. The group
// committer (group.go) makes ordinary commits durable at most
// Options.GroupCommit (1 s) after the first of them, with one WAL fsync
// for all of them, so a power cut loses at most that last interval of
// work nobody fsync'd, and never corrupts the journal. Fsync of a file
// flushes it with a durable commit; Fsync of a clean file or a directory
// is a barrier (one small durable commit, none when nothing was committed
// since the last durable one): either way everything committed before it
// survives a power cut when it returns. Close of the Journal and
// WaitDurable end with a durable commit too. The exception: a setattr of
// anything but the size on a file with unflushed data waits in memory
// with that data (pendAttr) and is committed by its flush, so a crash
// before the flush loses both together. WriteAt puts bytes in the file's
// dirty data and returns; they are readable at once but may be lost by a
// crash. A flush cuts the dirty blocks, hashes them (keyed BLAKE3 via
// remote.Sealer), deduplicates against existing blocks (refcount only;
// against a block not yet uploaded only once its staged copy on the
// local disk authenticates, else the flush seals its own bytes and they
// replace that copy), seals, stages them (a row of table staged for a small sealed block, in
// the flush's own commit; else a staging file, written and fsync'd, and
// the staging directory fsync'd, before the commit that names it, so no
// commit, durable or not, ever names a staging file whose bytes could be
// missing after a power cut; write-behind writes it under its own name
// before its commit, a flush under a temporary one that its commit
// renames), and commits the block map, size and times
// in one transaction. Trailing zeros of a block are not stored (a short
// block reads as zeros to its end); an all-zero block is a hole and
// costs nothing. A stored block never holds bytes past the file size, so
// truncate-up and writes past EOF expose zeros.
//
// (Until 2026-12 every flush, and so every close after a write, was a
// durable commit; DESIGN.md promise 1 changed.)
//
// Write-behind: while a file is written sequentially, each block the
// writer has moved past is cut, sealed, staged and committed in the
// background (at most 2 goroutines per journal), so the fsync or close at
// the end finds only its last blocks dirty. A block that changes while it
// is being cut stays dirty (a generation per dirty block decides). Those
// commits are ordinary ones (they raise the stored size to cover the
// block, times wait for the flush): after a crash before the flush, a file
// may show some of its unflushed blocks and not others, never bytes it was
// not given (behind.go).
//
// A staging file freed by an ordinary commit (a flush or write-behind
// replacing a staged block, the reaper freeing a deleted file) is
// removed only after a durable commit, the next fsync's or the group
// commit's (afterFreeLocked, lazyFree); the uploader's segment commit
// makes itself durable before it removes the files it uploaded. A power
// cut could otherwise undo the commit but not the removal, and Open would
// find a staged block without its bytes.
//
// An unlink of a file nothing holds is deferred (unlinks.go): an append
// to the unlink log, which a killed process cannot lose, and the
// database's transaction later, shared with the unlinks around it; every
// read of the namespace sees it done at once, and a durable commit
// applies it first, so it survives a power cut once the next fsync or
// group commit returns, as any namespace change. Any other unlink (or a
// rename over a file, or the last release of an unlinked
// file) does the least it can inside the call: one transaction that
// removes the name and drops the link count (or, for the last link of
// a closed file with no data and nothing in memory, drops its row: the
// same one transaction, and nothing left to reap). A deferred unlink's
// file that nothing holds is freed, blocks and all, in the transaction
// that applies it (freeTx). Any other inode whose
// last link and last handle are gone is freed by the reaper goroutine in the
// background (reclaimLater): its block references, block map rows,
// xattrs, dirty data and row, up to 64 inodes per transaction; their
// staging files go after the next durable commit. Until then the inode
// reads as having no link. When freeing fails (a full disk), the reaper
// retries, RetryMax apart. At Open, dirty files are deleted
// (never promised), unlinked inodes are freed, staging files not
// referenced by a staged block are removed, and a staged block whose file
// is missing makes Open fail with a message that says so: that data was
// never uploaded.
//
// The uploader (one goroutine) owns the queue, rebuilt from the staged
// blocks at Open. It packs blocks of small files first, then in staging
// order, into a segment of SegmentSize (half of it for small files'
// blocks; less after IdleFlush without new data, or at once when
// WaitDurable or a writer short of quota asks), reading each staging file
// straight into the shard objects of a Grid.NewSegmentBuf, ships it with
// Grid.WriteSegmentBuf, retrying with capped exponential backoff and
// jitter while that fails, then records the segment and the block
// locations in one transaction and deletes the staging files. Segments
// stored with fewer than K+M shards count as repair owed. Before each
// segment it yields, for at most 250 ms, while an application waits for a
// block from the grid, so interactive reads do not queue behind uploads,
// and for at most 2 s while a flush of 4 or more blocks or a write-behind
// goroutine runs, so an fsync
// after a big write does not share the disk (a local grid) or the CPU with
// shard encoding. A flush cuts, seals and stages its blocks 4 at a time
// (concurrent fsyncs share the file system's journal commits), then
// commits them in one transaction.
//
// # Quota
//
// Dirty blocks (counted whole) plus staged sealed bytes are bounded by
// Options.Quota. A writer that would pass it first flushes its own file,
// then waits up to QuotaWait for the uploader, then fails with ErrFull.
//
// # Concurrency and locks
//
// Every method is safe for concurrent use. Each file has its own lock (held
// while its blocks are read, hashed and sealed, never another file's); write
// transactions and staging-file renames are serialized by one short lock
// (wmu) that is never held while hashing, sealing or talking to the grid,
// and run on one connection; lookups and getattrs run on it too when they
// get wmu without waiting (TryLock), on the pool of read connections
// otherwise. Lock order: inode.mu -> wmu -> cmu -> imu -> qmu, imu ->
// imapMu (a leaf: the map of inodes for the reads that need no more),
// and wmu -> lookAhead.mu, attrCache.mu; the deferred unlinks' umu is a leaf (an
// unlink defers itself under umu alone, not wmu; a create under cmu,
// which only calls that add names take, not wmu: unlinks.go), and so is
// the filter of known blocks' mu (known.go; taken under wmu by incRef).
//
// # Caches of the database
//
// Inode rows a create wrote or a getattr read (attrCache) and the entries
// a lookup read ahead in readdir order (lookAhead), or with the whole
// directory when lookups come in random order (dirTable), are answered from
// memory while commitGen, bumped after every commit, is what it was when
// they were read. A transaction that changes only one inode's row (a
// flush, a write-behind commit) or none (an upload, a barrier) says so
// (scopeLocked), and the caches keep the other rows across it (the
// dirTable only across one that changes none). The
// in-memory attributes of unflushed files are laid over every answer.
// The hot reads (lookup, getattr, getxattr, the dedup check of a cut
// block) run on the write connection when wmu is free (reader): a pool
// connection would read again, from the WAL, the pages each commit
// changed.
//
// # Metadata on the grid
//
// With Options.Meta, a goroutine (metaShipper, metaship.go) ships the
// drive's tables to the grid every MetaInterval while anything changed:
// triggers note each changed row's key in mdirty, and a record (package
// metalog) carries those rows as they are (a delta) or every row (a full
// record, when the deltas outweigh the last one or 256 follow it); a root
// record on every node names the newest. A record is read in one read
// transaction, so it is a consistent point in time: a crash at any step
// leaves the grid's newest record, or an older one, whole. SyncGrid waits
// for the uploads and then ships; Status counts a file durable only when
// no row of it waits (from mdirty's keys kept in memory, metapending.go:
// mdirty has no index, so as not to cost every commit one). Rebuild makes a journal from a record and its chain;
// every record is a checkpoint, and Retention says which stay snapshots
// (snapshot.go), each readable through SnapshotJournal. ship holds
// metaShipper.mu, then wmu for its final commit only.
//
// # Segments and repair
//
// Segments lists every segment the drive keeps on the grid (data, and the
// metadata records' from mlog); FileSegments maps files to theirs.
// UpdateSegment records a repaired segment's new node list in one durable
// commit (segments.nodes and stored, or mlog.seg), replaces the cached
// SegmentInfo (readers holding the old one keep it: both name intact
// shards until the caller deletes the replaced ones), and recounts the
// repair owed. Package journal/repair drives them.
//
// # Code
//
// Journal's state is one struct (shared, journal.go) and its methods are
// cut into parts over it, one or a few files each (parts.go says which):
// the database layer every part stands on, the namespace, attributes,
// file data, the inode table, the flusher, the uploader, write-behind,
// the grid view, garbage collection, snapshots and the metadata shipper.
// Journal forwards each exported call to its part (api.go).
//
// Errors are the sentinels of types.go, wrapped with what happened; a
// local disk error is wrapped as is (fs maps it to EIO) and leaves the
// database as it was before the failed operation.
package journal
