//go:build meshdrive_testhooks

package main

import (
	"os"
	"strconv"

	"github.com/meshdrive/meshdrive/fs"
	"github.com/meshdrive/meshdrive/remote/faulty"
	remoteopen "github.com/meshdrive/meshdrive/remote/open"
)

// A TEST binary (go build -tags meshdrive_testhooks): two environment
// variables reach into it.
//
//   - MESHDRIVE_INSECURE_TEST_KDF=1 makes new keys with remoteopen.TestKeyParams(),
//     so that dozens of unlocks stay fast on a loaded machine. Such a key
//     gives no protection against guessing.
//   - MESHDRIVE_TEST_CORRUPT_READS=F flips a byte in a fraction F of the
//     blocks read, after every integrity check: the fault suites' negative
//     control.
func init() {
	testHooks.kdf = func(e *env) (remoteopen.KeyParams, bool) {
		if e.getenv("MESHDRIVE_INSECURE_TEST_KDF") == "1" {
			return remoteopen.TestKeyParams(), true
		}
		return remoteopen.KeyParams{}, false
	}
	if f, _ := strconv.ParseFloat(os.Getenv("MESHDRIVE_TEST_CORRUPT_READS"), 64); f > 0 {
		testHooks.wrapBlocks = func(r fs.BlockReader) fs.BlockReader {
			return faulty.CorruptBlocks(r, f)
		}
	}
}
