// Package keyring wraps a drive's 32-byte master key under a passphrase.
//
// The wrapped form is a small JSON document (see Blob): the master key is
// encrypted with AES-256-GCM under a key-encryption key derived from the
// passphrase with argon2id; the salt and the argon2id parameters are stored
// beside it, so a blob can be unwrapped anywhere with only the passphrase.
// The blob is not secret: it is kept in the data dir (key.json) and on every
// node (meta object "meta/key"), so a fresh machine with the passphrase and
// one node can recover the drive.
//
// Unwrap with the wrong passphrase returns ErrWrongPassphrase; a blob that
// cannot be parsed returns an error wrapping ErrFormat. Rewrap changes the
// passphrase without changing the master key, so no stored data changes.
// Every function is safe for concurrent use; none keeps a reference to
// its arguments.
package keyring
