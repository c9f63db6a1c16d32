package dirstore

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MarkName is the file New leaves in a store's directory (a name no
// object can have). With Options.MustExist, an empty directory without it
// is taken for a disk's mount point with the disk not mounted, not for
// the node.
//
// The mark holds the node's id (a line "id " and 32 hex digits): random,
// made with the mark, and recorded by the drive (Options.ID), so a
// directory that is another node's (another grid's, or another disk
// mounted at the node's path) is refused rather than served. A mark from
// before ids (or one made by hand with touch) is adopted: the id is
// written into it.
const MarkName = ".meshdrive-node"

// markText starts every mark.
const markText = "meshdrive node directory\n"

// ErrWrongNode is wrapped by the errors of a store whose directory's mark
// holds another id than Options.ID, or that has no mark while the drive
// recorded an id for it.
var ErrWrongNode = errors.New("the directory is not this node's")

// NewID returns a new random node id.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("dirstore: crypto/rand failed: " + err.Error()) // never returns an error on supported systems
	}
	return hex.EncodeToString(b[:])
}

// validID: 32 lowercase hex digits.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// readMark returns the id in the mark at marker ("" for a mark without
// one). A mark that is not a regular file, or whose id line is garbled,
// is an error.
func readMark(marker string) (string, error) {
	f, err := os.Open(marker)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("dirstore: the mark %s is not a file; remove it, then start again", marker)
	}
	sc := bufio.NewScanner(io.LimitReader(f, 4096))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "id "); ok {
			v = strings.TrimSpace(v)
			if !validID(v) {
				return "", fmt.Errorf("dirstore: the mark %s holds a garbled id %q (want 32 hex digits): "+
					"if it was edited by hand, remove the id line, and the node adopts the drive's id", marker, v)
			}
			return v, nil
		}
	}
	return "", sc.Err()
}

// writeMark writes a mark with id at marker, atomically, and reports
// whether it did: a directory that cannot be written (read-only) keeps
// its mark as it is, and that is no error.
func writeMark(dir, marker, id string) (bool, error) {
	data := []byte(markText + "id " + id + "\n")
	// A temporary file of its own: two calls at once (Puts that both
	// find the mark gone) must not rename each other's.
	f, err := os.CreateTemp(dir, tempPrefix+"mark-*")
	if err == nil {
		_, err = f.Write(data)
		err = cmp.Or(err, f.Close())
		if err == nil {
			err = os.Rename(f.Name(), marker)
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}
	switch {
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("dirstore: mark %s as a node's directory: %w", dir, err)
	}
	syncDir(dir) // best effort: a mark lost to a crash is made again by the next open
	return true, nil
}

// mark checks dir for its mark and returns the node's id. want is the id
// the drive recorded for the node ("": none recorded).
//
//   - A mark with an id: that id; another than want is ErrWrongNode.
//   - A mark without one (from before ids, or touched by hand for a
//     replaced disk): adopted, want (or a new id) written into it.
//   - No mark, in a new or empty directory: made, with want or a new id;
//     an empty directory is refused when mustExist (a disk's mount point,
//     the disk not mounted).
//   - No mark in a directory that holds something: a store from before
//     marks, adopted as above, unless want is set: then the drive knew the
//     node's mark and this directory is not the node's (ErrWrongNode).
func mark(dir, marker string, mustExist bool, want string) (string, error) {
	id, err := readMark(marker)
	switch {
	case err == nil && id != "":
		if want != "" && id != want {
			return "", wrongNode(dir, marker, id, want)
		}
		return id, nil
	case err == nil: // a mark without an id: adopt it
		return adopt(dir, marker, want)
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", fmt.Errorf("dirstore: %w", err)
	}
	names, err := d.Readdirnames(64) // enough to see one that is not a temporary file
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("dirstore: %w", err)
	}
	held := false
	for _, n := range names {
		held = held || !strings.HasPrefix(n, tempPrefix)
	}
	switch {
	case !held && mustExist:
		return "", fmt.Errorf("dirstore: %w: %s is empty, without the mark a node's directory carries "+
			"(if it is a disk's mount point, mount the disk; if the disk was replaced, touch %s, "+
			"then run meshdrive check --repair to fill it again)", ErrNoDir, dir, marker)
	case held && want != "":
		return "", fmt.Errorf("dirstore: %w: %s holds files but not the mark %s the node's directory carries "+
			"(node id %s): it is not the node's directory (the wrong disk mounted there, or the wrong path); "+
			"mount the node's disk or give its directory; if this is the node's disk on purpose, touch %s "+
			"(it then takes the node's id), then run meshdrive check --repair",
			ErrWrongNode, dir, marker, want, marker)
	}
	return adopt(dir, marker, want)
}

// adopt writes a mark with want (or a new id) in dir and returns the id:
// want, or the new one once written ("" when dir is read-only).
func adopt(dir, marker, want string) (string, error) {
	id := want
	if id == "" {
		id = NewID()
	}
	ok, err := writeMark(dir, marker, id)
	if err != nil {
		return "", err
	}
	if !ok && want == "" {
		return "", nil
	}
	return id, nil
}

func wrongNode(dir, marker, id, want string) error {
	return fmt.Errorf("dirstore: %w: %s is node %s (the id in its mark %s), but this node is %s: "+
		"it is another node's directory (another grid's node, or another disk mounted at this path); "+
		"mount this node's own disk there or give its own directory; if this directory is to become this node "+
		"(its objects from the other node are then garbage), remove %s, touch it again, and run meshdrive check --repair",
		ErrWrongNode, dir, id, marker, want, marker)
}

// markID returns the id in s's mark now, adopting a mark without one.
func (s *Store) markID() (string, error) {
	id, err := readMark(s.marker)
	if err == nil && id == "" {
		return adopt(s.dir, s.marker, s.id)
	}
	return id, err
}
