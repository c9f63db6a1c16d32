// Package remotetest is the conformance suite every remote.Store backend
// passes (RunStoreTests), and helpers to make valid and damaged shard
// objects for tests (Object, Flip).
//
// The suite covers round trips, ranged reads at every edge (inside the
// header, straddling header and payload, straddling checksum chunks, the
// last byte), ErrRange past the end, ErrNotFound, overwrites, idempotent
// deletes, list paging, prefixes and byte order, names that must be refused
// (ErrInvalidName, nothing stored), corrupt uploads (ErrCorrupt, nothing
// stored, an existing object kept), concurrent puts and gets, cancelled
// contexts, and Info.
package remotetest
