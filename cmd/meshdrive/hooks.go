package main

import (
	"github.com/meshdrive/meshdrive/fs"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// testHooks are set only in a binary built with the meshdrive_testhooks
// build tag (testhooks.go), which the test suites build for themselves.
// A product binary has none: no environment variable can weaken its key
// derivation or corrupt its reads.
var testHooks struct {
	// kdf, when it returns true, replaces the key derivation parameters
	// of new keys.
	kdf func(e *env) (remoteopen.KeyParams, bool)
	// wrapBlocks wraps the drive's block reader (see fs.DriveOptions).
	wrapBlocks func(fs.BlockReader) fs.BlockReader
}
