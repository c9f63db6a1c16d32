// Package remote is everything about the grid: the Store interface (one
// node) and the sentinels its backends wrap, sealing (keyed block ids,
// compression, AEAD), segments and their erasure coding, placement of
// shards over nodes, reads with reconstruction and hedging, and the
// metadata objects (root record, wrapped key) kept on every node.
//
// It never knows about files or inodes: its callers hand it sealed-block
// payloads and get back BlockRefs and SegmentInfos to remember.
//
// # Sealing
//
// A Sealer derives three keys from the drive's master key (HKDF-SHA256):
// the block-id key (BlockID is keyed BLAKE3 of the plaintext), the block
// AEAD key and the metadata AEAD key. Seal cuts a block into frames of
// FrameSize (32 KiB) of plaintext, each compressed with zstd when a 64 KiB
// sample of the block shows it pays and the frame shrinks, and each sealed
// with AES-256-GCM under its own random nonce, with the block id, the
// block's length, the frame count, the frame's index and its index entry
// as associated data (seal_frames.go has the layout). A small frame index
// after the header lets a reader compute any frame's byte range from the
// block's first FrameHeadMax bytes (ParseFrames) and open only the frames
// it needs (OpenFrames). Blocks of the older version 1 (one AEAD over the
// whole block, still what SealMeta writes) open as one frame. Open and
// OpenFrames reject anything this build did not seal, never decompress past
// MaxBlockSize, and every failure wraps ErrCorrupt.
//
// # Segments and reads
//
// Grid.WriteSegment cuts a segment into k equal data shards plus m
// Reed-Solomon parity shards (a SegmentBuf holds a segment already laid
// out in its shard objects, for WriteSegmentBuf to ship without a copy)
// and stores each as a shard-format object on
// its own node, chosen by weighted rendezvous hashing with zones spread;
// nodes that fail are skipped for the next candidate. The code is
// systematic, so FetchBlock's healthy path is one ranged Get per data shard
// the block touches and no Reed-Solomon work; on failure, AEAD failure or
// slowness (HedgeAfter) it reads chunk-aligned, checksum-verified spans of
// any k shards and reconstructs. FetchFrameIndex (the block's head, read
// checksum-verified) and FetchFrames (a run of frames: the same healthy
// path and fallback over just their bytes) serve random reads at the cost
// of the frames they touch.
//
// # Placement and repair
//
// Placer is the placement as a pure function of the node list: weighted
// rendezvous hashing of (segment, shard index), distinct nodes, zones
// spread. WriteSegment uses it; repair and cmd/meshsim must too.
// WriteSegment and repair leave out the nodes that have no room for a
// shard as far as the grid knows (what Health last heard of their free
// space, less what was stored there since and the shards on their way
// there, or a Put they refused as ErrFull, for a minute), so no shard
// crosses the network to be refused;
// when too few nodes are left the write fails with ErrTooFewNodes naming
// the full ones.
// RepairPolicy says when a segment is owed repair (fewer than Below
// shards stored) and in what order segments are repaired (fewest shards
// to spare, then oldest); RepairSegment places with it.
//
// # Health, repair and membership
//
// Health asks every node for its Info with a short timeout. A node that
// does not answer (a stopped process keeps its connections open and
// never answers) is unresponsive until a later Health sees it answer:
// meanwhile placement leaves it out (segments are stored on the others,
// repair owed), reads reconstruct from the other shards, any other call
// to it fails at once with ErrUnavailable wrapping ErrUnresponsive, and
// the calls in flight to it when it was found are ended. A node that
// answers Health keeps its slow transfers. A mount calls Health every
// few seconds, so a stopped node costs one health timeout.
//
// Survey lists every node's shards once, so the shards of many segments
// are counted from a few listings; CheckSegment asks each shard's node
// about it (with Verify, the node checks every checksum itself when its
// store is a Verifier). RepairSegment rebuilds the shards a segment lacks
// from any k intact ones and places them as a write would (next
// candidates for nodes gone, draining or failing), moves shards off
// draining nodes, and with Rebalance onto nodes that joined; the caller
// records the new node list, then deletes the shards it replaced
// (DeleteShards). The member list is an immutable view swapped whole by
// AddMember, RemoveMember and SetDraining. SameStore and Aliases tell
// whether stores under different addresses are one (a probe object put on
// one is looked for on the others), since a node that joins twice would
// hold two "distinct" shards of a segment and be wiped by a drain of
// either name.
//
// # Errors
//
// Store errors wrap the sentinels in store.go and carry the node's name.
// A segment that cannot be read is a *TooFewShardsError (errors.Is
// ErrTooFewShards) naming the segment and listing each shard's cause; a
// segment that cannot be written wraps ErrTooFewNodes and leaves no shard
// behind. Failures of the bytes themselves wrap ErrCorrupt.
//
// # Concurrency and buffers
//
// Sealer and Grid are safe for concurrent use. Every store call holds one
// of the node's NodeConcurrency slots and is bounded by CallTimeout (a
// Put has more time per byte it carries; a stat, delete or info at most
// seconds); a
// read that returns cancels the shard reads it no longer needs. Slices
// passed in (plaintext, segment data, ReadSegment's p) are read or written
// only during the call; slices returned are newly allocated and owned by
// the caller.
//
// Subpackages: shard (the on-node object format), dirstore, node (server
// and client), s3store (backends), remotetest (the conformance suite every
// backend passes), faulty (a fault-injecting Store wrapper for tests).
package remote
