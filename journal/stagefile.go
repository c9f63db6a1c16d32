package journal

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/meshdrive/meshdrive/remote"
)

// Staging files are written with O_DIRECT where the file system takes it:
// the sealed bytes go from the seal buffer to the disk with no copy into
// the page cache (writing 4 MiB through the page cache cost about as much
// CPU as sealing it, and the pages were dropped right after the fsync
// anyway, see writeTemp). The write is padded to directAlign with zeros
// and the file cut back to the sealed length; the fsync that follows
// makes size and data durable as before. A file system that refuses
// O_DIRECT (tmpfs, some FUSE and network file systems) answers EINVAL
// once; the journal then stages through the page cache for good.

// directAlign is the alignment O_DIRECT asks of the buffer's address, the
// file offset and the length (the logical block size; 4096 covers 512).
const directAlign = 4096

// errNoDirect: the staging directory does not take O_DIRECT writes.
var errNoDirect = errors.New("O_DIRECT refused")

// sealBuf returns *pb emptied, reallocated when it cannot take the sealed
// form of plainLen bytes padded for an O_DIRECT write, or is not aligned.
func sealBuf(pb *[]byte, plainLen int) []byte {
	need := roundUp(remote.SealedSizeMax(plainLen), directAlign)
	if cap(*pb) < need || !isAligned(*pb) {
		*pb = alignedSlice(need)
	}
	return (*pb)[:0]
}

// alignedSlice returns n bytes of capacity whose first byte is
// directAlign-aligned.
func alignedSlice(n int) []byte {
	b := make([]byte, n+directAlign)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (directAlign - 1))
	return b[off : off : off+n]
}

func isAligned(b []byte) bool {
	return cap(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))&(directAlign-1) == 0
}

func roundUp(n, a int) int { return (n + a - 1) / a * a }

// canWriteDirect reports whether sealed can be written with O_DIRECT as it
// lies: aligned, with room for the padding in its capacity.
func canWriteDirect(sealed []byte) bool {
	return isAligned(sealed) && cap(sealed) >= roundUp(len(sealed), directAlign)
}

// writeDirect writes sealed (canWriteDirect) to the new file name with
// O_DIRECT and fsyncs it. errNoDirect when the file system refuses it;
// on any error no file is left behind.
func writeDirect(name string, sealed []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o600)
	if errors.Is(err, unix.EINVAL) {
		return errNoDirect
	}
	if err != nil {
		return err
	}
	padded := sealed[:roundUp(len(sealed), directAlign)]
	clear(padded[len(sealed):])
	_, err = f.Write(padded)
	if errors.Is(err, unix.EINVAL) {
		err = errNoDirect
	}
	if err == nil && len(padded) > len(sealed) {
		err = f.Truncate(int64(len(sealed)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}
