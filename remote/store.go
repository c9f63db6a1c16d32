package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Store is one storage node: a flat namespace of immutable objects in the
// shard format (package remote/shard). Implementations: remote/dirstore (a
// local directory), remote/node (the HTTP client of `meshdrive node serve`)
// and remote/s3store (a bucket and prefix). Retry, limits and fault
// injection are wrappers around a Store, not code inside one.
//
// Every method takes ctx first and returns promptly when it is cancelled.
// Errors wrap the sentinels below so callers can use errors.Is.
type Store interface {
	// Put stores data under name, atomically: afterwards the object is
	// either complete and verified or absent. Putting an existing name
	// replaces it. The store does not keep data after Put returns.
	Put(ctx context.Context, name string, data []byte) error
	// Get reads exactly len(p) bytes of the object starting at off into p
	// (p is owned by the caller). A range past the end is ErrRange.
	Get(ctx context.Context, name string, off int64, p []byte) error
	// Stat returns the object's size.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// Delete removes name. Deleting a missing name is not an error.
	Delete(ctx context.Context, name string) error
	// List returns up to limit objects whose names start with prefix and
	// sort after `after`, in name order. An empty result is the end.
	List(ctx context.Context, prefix, after string, limit int) ([]ObjectInfo, error)
	// Info reports the node's capacity and use.
	Info(ctx context.Context) (NodeInfo, error)
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

// NodeInfo describes a node's capacity. Capacity and Free are bytes; a
// backend that cannot tell (S3) reports -1.
type NodeInfo struct {
	Capacity int64  `json:"capacity"`
	Free     int64  `json:"free"`
	Objects  int64  `json:"objects"`
	Version  string `json:"version"`
	// ID is the node's id, the random one in its directory's mark
	// (remote/dirstore.MarkName), which a drive records to tell the node's
	// directory from another; "" when the node has none (S3).
	ID string `json:"id,omitempty"`
	// Volume names the file system that holds the node's data, so that
	// nodes sharing one disk (the embedded grid's directories, two node
	// servers on one machine) count its space once; empty when the
	// backend cannot tell. Only equality means anything.
	Volume string `json:"volume,omitempty"`
	// Scrub is the node's own scrubber's report (node servers with
	// --scrub-rate); nil when it runs none.
	Scrub *ScrubReport `json:"scrub,omitempty"`
}

// ScrubReport is what a node's scrubber has found: it reads every stored
// object at a gentle rate, and moves the ones that fail a checksum aside
// (they then count as missing, so repair regenerates them).
type ScrubReport struct {
	Passes      int64     `json:"passes"`       // full passes finished
	Checked     int64     `json:"checked"`      // objects verified, all passes
	Bytes       int64     `json:"bytes"`        // bytes read, all passes
	LastPass    time.Time `json:"last_pass"`    // end of the last full pass (zero: none yet)
	Corrupt     []string  `json:"corrupt"`      // names found corrupt and moved aside (the most recent 1000)
	CorruptSeen int64     `json:"corrupt_seen"` // how many, all passes
}

// Sentinel errors of the remote layer. Backends wrap them with the node and
// object they concern.
var (
	ErrNotFound     = errors.New("object not found")
	ErrRange        = errors.New("range outside the object")
	ErrCorrupt      = errors.New("object failed its checksum")
	ErrFull         = errors.New("node is out of space")
	ErrUnauthorized = errors.New("node refused the access token")
	ErrInvalidName  = errors.New("invalid object name")
	ErrUnavailable  = errors.New("node unavailable")
	// ErrTooFewShards: fewer than k usable shards of a segment could be
	// read. The error value is a *TooFewShardsError naming the segment.
	ErrTooFewShards = errors.New("too few shards")
	// ErrTooFewNodes: fewer than k+1 nodes took a segment's shards; the
	// caller still holds the data and should retry later.
	ErrTooFewNodes = errors.New("too few nodes up to store a segment")
)

// TooFewShardsError says which segment could not be read and why.
type TooFewShardsError struct {
	Segment SegmentID
	Usable  int
	Need    int
	Causes  []error
}

func (e *TooFewShardsError) Error() string {
	s := fmt.Sprintf("segment %s: %d usable shards, need %d", e.Segment, e.Usable, e.Need)
	if len(e.Causes) > 0 {
		s += " (" + errors.Join(e.Causes...).Error() + ")"
	}
	return strings.ReplaceAll(s, "\n", "; ")
}

// Is makes errors.Is(err, ErrTooFewShards) true.
func (e *TooFewShardsError) Is(target error) bool { return target == ErrTooFewShards }

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that IsPermanent reports true for it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether retrying err is pointless: a permanent mark,
// or a sentinel that no retry changes.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrRange) ||
		errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrInvalidName) ||
		errors.Is(err, context.Canceled)
}

// MaxNameLen bounds object names.
const MaxNameLen = 200

// ValidName checks an object name: 1 to 3 slash-separated components of
// [A-Za-z0-9_-.], none empty, none starting with a dot. Names that pass can
// be joined to a directory without escaping it.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q (length %d)", ErrInvalidName, name, len(name))
	}
	parts := strings.Split(name, "/")
	if len(parts) > 3 {
		return fmt.Errorf("%w: %q has more than 3 components", ErrInvalidName, name)
	}
	for _, p := range parts {
		if p == "" || p[0] == '.' {
			return fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
				return fmt.Errorf("%w: %q has byte %q", ErrInvalidName, name, c)
			}
		}
	}
	return nil
}
