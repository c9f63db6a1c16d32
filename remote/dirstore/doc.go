// Package dirstore is a remote.Store kept in a local directory: one file
// per object, "/" in an object name mapping to a subdirectory. It backs the
// embedded default grid (DATA/nodes/node-N) and the node server
// (`meshdrive node serve`).
//
// Promises:
//
//   - Names are checked with remote.ValidName before any path is built, so
//     no name reaches outside the directory; a bad name is
//     remote.ErrInvalidName and touches nothing.
//   - Put verifies the whole object (shard.Verify) before storing it; a
//     corrupt object is remote.ErrCorrupt and nothing is written. Put is
//     atomic and durable: a temporary file in the object's directory is
//     written, fsynced, renamed over the name, and the directory fsynced.
//     A full disk is remote.ErrFull and leaves no partial file.
//   - Get verifies the checksums of every payload chunk it returns bytes
//     from, and answers remote.ErrCorrupt rather than bad bytes. Bytes
//     inside the header are served after the header itself checks out.
//   - List pages in name order; temporary files (names starting with a
//     dot) are never listed.
//
// Deletes are not fsynced: after a crash a deleted object may come back,
// which costs space, never data. The object count in Info is kept in
// memory and is approximate when other processes write to the directory,
// and while it is counted again in the background after the directory's
// disk comes back (see Options.MustExist).
//
// A Store is safe for concurrent use. Two Stores on one directory work,
// with the caveat on the object count above.
package dirstore
