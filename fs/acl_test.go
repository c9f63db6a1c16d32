package fs

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// aclBytes encodes ACL entries (tag, perm) in the extended-attribute form
// the kernel sends, ids undefined except for named users and groups.
func aclBytes(entries ...[2]uint16) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		id := uint32(0xffffffff)
		if e[0] == aclUser || e[0] == aclGroup {
			id = 1000
		}
		b = binary.LittleEndian.AppendUint16(b, e[0])
		b = binary.LittleEndian.AppendUint16(b, e[1])
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return b
}

// modeACL is the three-entry ACL equivalent to perm.
func modeACL(perm uint32) []byte {
	return aclBytes([2]uint16{aclUserObj, uint16(perm >> 6 & 7)}, [2]uint16{aclGroupObj, uint16(perm >> 3 & 7)}, [2]uint16{aclOther, uint16(perm & 7)})
}

func TestACLMode(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		mode uint32
		err  error // nil: mode; errNotTrivial; errAny: some other error
	}{
		{"0644", modeACL(0o644), 0o644, nil},
		{"0750", modeACL(0o750), 0o750, nil},
		{"0000", modeACL(0), 0, nil},
		{"any order", aclBytes([2]uint16{aclOther, 5}, [2]uint16{aclUserObj, 7}, [2]uint16{aclGroupObj, 1}), 0o715, nil},
		{"named user", aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{aclUser, 4}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclMask, 4}, [2]uint16{aclOther, 4}), 0, errNotTrivial},
		{"mask alone", aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclMask, 4}, [2]uint16{aclOther, 4}), 0, errNotTrivial},
		{"empty", nil, 0, errAny},
		{"header only", aclBytes(), 0, errAny},
		{"torn entry", modeACL(0o644)[:27], 0, errAny},
		{"version 1", append([]byte{1, 0, 0, 0}, modeACL(0o644)[4:]...), 0, errAny},
		{"no other", aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{aclGroupObj, 4}), 0, errAny},
		{"owner twice", aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{aclUserObj, 7}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclOther, 4}), 0, errAny},
		{"perm 8", aclBytes([2]uint16{aclUserObj, 8}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclOther, 4}), 0, errAny},
		{"unknown tag", aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{0x40, 4}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclOther, 4}), 0, errAny},
	} {
		mode, err := aclMode(c.b)
		switch {
		case c.err == nil && (err != nil || mode != c.mode):
			t.Errorf("%s: %o, %v; want %o", c.name, mode, err, c.mode)
		case c.err == errNotTrivial && !errors.Is(err, errNotTrivial):
			t.Errorf("%s: %o, %v; want errNotTrivial", c.name, mode, err)
		case c.err == errAny && (err == nil || errors.Is(err, errNotTrivial)):
			t.Errorf("%s: %o, %v; want a decoding error", c.name, mode, err)
		}
	}
}

var errAny = errors.New("any decoding error")

func FuzzACLMode(f *testing.F) {
	f.Add(modeACL(0o644))
	f.Add(aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{aclUser, 4}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclMask, 4}, [2]uint16{aclOther, 4}))
	f.Add([]byte{2, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		mode, err := aclMode(b)
		if err != nil {
			return
		}
		if mode&^0o777 != 0 {
			t.Fatalf("mode %o beyond the permission bits", mode)
		}
		if got, err := aclMode(modeACL(mode)); err != nil || got != mode {
			t.Fatalf("re-encoded %o decodes to %o, %v", mode, got, err)
		}
	})
}

// TestACLIsTheMode: an access ACL of the base entries alone is a chmod,
// seen at once (the kernel is told to drop the inode's attributes); cp -a
// copies a tree's modes through it with no fallback; other ACLs are
// refused and change nothing; only the owner or root may set one.
func TestACLIsTheMode(t *testing.T) {
	s := newStack(t, stackOptions{AllowOther: true})
	fn := filepath.Join(s.mnt, "f")
	writeFile(t, fn, []byte("x"), 0o600)
	if err := syscall.Chmod(fn, 0o2600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(fn, aclAccess, modeACL(0o754), 0); err != nil {
		t.Fatalf("setting a trivial ACL: %v", err)
	}
	// statx for the mode alone: the kernel answers from its cache unless
	// the attributes were dropped (the ACL's own ctime update drops only
	// ctime).
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, fn, 0, unix.STATX_MODE, &sx); err != nil {
		t.Fatal(err)
	}
	if m := uint32(sx.Mode) & 07777; m != 0o2754 {
		t.Errorf("statx right after the ACL: mode %o, want 2754", m)
	}
	if m := stat(t, fn).Mode & 07777; m != 0o2754 {
		t.Errorf("stat after the ACL: mode %o, want 2754", m)
	}
	buf := make([]byte, 64)
	if _, err := unix.Getxattr(fn, aclAccess, buf); err != unix.ENODATA {
		t.Errorf("getxattr of the access ACL: %v, want ENODATA (the mode is the ACL)", err)
	}
	named := aclBytes([2]uint16{aclUserObj, 6}, [2]uint16{aclUser, 4}, [2]uint16{aclGroupObj, 4}, [2]uint16{aclMask, 4}, [2]uint16{aclOther, 0})
	if err := unix.Setxattr(fn, aclAccess, named, 0); err != unix.EOPNOTSUPP {
		t.Errorf("an ACL with a named user: %v, want EOPNOTSUPP", err)
	}
	if err := unix.Setxattr(s.mnt, "system.posix_acl_default", modeACL(0o755), 0); err != unix.EOPNOTSUPP {
		t.Errorf("a default ACL: %v, want EOPNOTSUPP", err)
	}
	if err := unix.Removexattr(fn, aclAccess); err != nil {
		t.Errorf("removing the access ACL: %v", err)
	}
	if err := unix.Removexattr(s.mnt, "system.posix_acl_default"); err != nil {
		t.Errorf("removing the default ACL: %v", err)
	}
	if m := stat(t, fn).Mode & 07777; m != 0o2754 {
		t.Errorf("after refused and removed ACLs: mode %o, want 2754", m)
	}

	// Someone else's file: nobody may write it, not set its mode. (The
	// kernel refuses this before it reaches the drive, which checks
	// again.)
	theirs := filepath.Join(s.mnt, "theirs")
	writeFile(t, theirs, []byte("x"), 0o666)
	if err := os.Chmod(theirs, 0o666); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(s.mnt, "src")
	writeFile(t, src, []byte("y"), 0o604)
	if err := os.Chmod(src, 0o604); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody(t, "cp", "--preserve=mode", src, theirs); err == nil {
		t.Errorf("nobody preserved a mode onto root's file: %s", out)
	}
	if m := stat(t, theirs).Mode & 07777; m != 0o666 {
		t.Errorf("root's file after nobody's cp --preserve=mode: mode %o, want 666", m)
	}

	// cp -a of a tree: every mode arrives, with nothing reported.
	tree := t.TempDir()
	modes := map[string]uint32{"a": 0o644, "b": 0o755, "c": 0o600, "d": 0o750, "d/e": 0o640, "g": 0o2775, "g/h": 0o444}
	for _, p := range []string{"a", "b", "c", "d", "d/e", "g", "g/h"} {
		path := filepath.Join(tree, p)
		if modes[p]&0o100 != 0 && p != "b" { // directories
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFile(t, path, []byte(p), 0o600)
		}
		if err := os.Chmod(path, os.FileMode(modes[p]&0o777)|goMode(modes[p])); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", tree, filepath.Join(s.mnt, "copy")).CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	for p, want := range modes {
		if m := stat(t, filepath.Join(s.mnt, "copy", p)).Mode & 07777; m != want {
			t.Errorf("cp -a: %s has mode %o, want %o", p, m, want)
		}
	}
}

// goMode is the os.FileMode of mode's set-ID and sticky bits.
func goMode(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&syscall.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&syscall.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}
