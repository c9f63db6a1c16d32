// Package remote is everything about the grid: the Store interface (one
// node) and the sentinels its backends wrap, sealing (keyed block ids,
// compression, AEAD), segments and their erasure coding, placement of
// shards over nodes, reads with reconstruction and hedging, and the
// metadata objects (root record, wrapped key) kept on every node.
//
// It never knows about files or inodes: its callers hand it sealed-block
// payloads and get back BlockRefs and SegmentInfos to remember.
//
// Subpackages: shard (the on-node object format), dirstore, node (server
// and client), s3store (backends), remotetest (the conformance suite every
// backend passes), faulty (a fault-injecting Store wrapper for tests).
package remote
