package web

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"syscall"
)

// errBadPath is a path the API refuses: it would leave the drive or is
// not a name.
var errBadPath = errors.New("bad path")

// errNameTooLong is a path segment longer than a name may be: a name the
// drive would refuse, not a path that leaves it (fsError answers
// name_too_long).
var errNameTooLong = fmt.Errorf("a name is longer than 255 bytes: %w", syscall.ENAMETOOLONG)

// snapshotsDir is the drive's folder of snapshots (fs.snapshotsName); the
// API reaches it with ?snapshot=NAME, never by path.
const snapshotsDir = ".snapshots"

// DecodePath turns the escaped path after an endpoint's prefix ("a/b%20c/")
// into a clean path relative to the drive's root ("a/b c"; "" is the root).
// Empty segments are skipped. A segment that is "." or "..", that decodes
// to a string holding "/" or NUL or longer than 255 bytes, or that is not
// valid escaping is refused, as is ".snapshots" at the top (reach snapshots with
// ?snapshot=NAME).
func DecodePath(escaped string) (string, error) {
	var segs []string
	for _, s := range strings.Split(escaped, "/") {
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", errBadPath
		}
		if len(d) > maxName {
			return "", errNameTooLong
		}
		if !validName(d) { // ".", "..", "/", NUL
			return "", errBadPath
		}
		segs = append(segs, d)
	}
	if len(segs) > 0 && segs[0] == snapshotsDir {
		return "", errBadPath
	}
	return strings.Join(segs, "/"), nil
}

// maxName is the longest name the drive takes, in bytes.
const maxName = 255

// validName reports whether s is one path segment: a snapshot's name, a
// new name in a rename.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00") && len(s) <= maxName
}

// cleanRel checks a path given in a JSON body ("a/b", "/a/b"): the same
// rules as DecodePath, without the escaping.
func cleanRel(p string) (string, error) {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s == "" {
			continue
		}
		if len(s) > maxName {
			return "", errNameTooLong
		}
		if !validName(s) {
			return "", errBadPath
		}
		segs = append(segs, s)
	}
	if len(segs) > 0 && segs[0] == snapshotsDir {
		return "", errBadPath
	}
	return strings.Join(segs, "/"), nil
}

// bodyPath is the path a JSON body gives in field (from, to, path): as
// the plain string (cleanRel), or as field_href, the path %-encoded from
// its bytes as in addresses (DecodePath), which is how a name that is not
// UTF-8 is given (JSON strings hold no such name). One of the two, not
// both; neither is "".
func bodyPath(field, plain, escaped string) (string, error) {
	if escaped == "" {
		return cleanRel(plain)
	}
	if plain != "" {
		return "", &twoFormsError{field}
	}
	return DecodePath(escaped)
}

// twoFormsError is a JSON body that gives a path both as FIELD and as
// FIELD_href (fsError answers 400 bad_json).
type twoFormsError struct{ field string }

func (e *twoFormsError) Error() string {
	return fmt.Sprintf("the body gives both %q and %q; give the path once: %q as text, or %q %%-encoded from its bytes (a name that is not UTF-8)",
		e.field, e.field+"_href", e.field, e.field+"_href")
}
