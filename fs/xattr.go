package fs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/meshdrive/meshdrive/journal"
)

// StatusXattr is the read-only extended attribute that says how safe a
// file's data is: "durable", "degraded" or "local (N bytes pending)". It
// is computed from journal.Status on every read (degraded too when a node
// that holds a shard of it is down now: MountOptions.ShardsDown) and not listed by
// listxattr, so copying tools (cp -a, rsync -X) do not carry it along.
const StatusXattr = "user.meshdrive.status"

// statusText renders a FileStatus as the xattr value.
func statusText(s journal.FileStatus) string {
	switch s.State {
	case journal.StateLost:
		return fmt.Sprintf("lost (%d blocks cannot be read)", s.LostBlocks)
	case journal.StateDurable:
		return "durable"
	case journal.StateDegraded:
		return "degraded"
	case journal.StateLocal:
		return fmt.Sprintf("local (%d bytes pending)", s.PendingBytes)
	}
	return s.State.String()
}

// lostCounter is the journal's count of lost blocks (*journal.Journal
// has it; a snapshot's journal and test fakes need not).
type lostCounter interface {
	Lost(ctx context.Context) (journal.LostReport, error)
}

// rootLost is the status xattr of the drive's root while blocks are lost
// anywhere in it ("" otherwise, and for every other inode): the root's
// own metadata may be durable, but a person asking the root asks about
// the drive, and must not read "durable" while files read EIO.
func (n *node) rootLost(ctx context.Context) string {
	lc, ok := n.fsys.j.(lostCounter)
	if !ok || n.ino() != journal.RootIno || n.fsys.inoOff != 0 {
		return ""
	}
	l, err := lc.Lost(settled(ctx))
	if err != nil || l.Blocks == 0 {
		return ""
	}
	return fmt.Sprintf("lost (%d blocks of %d files cannot be read; restore them from a copy or delete them; meshdrive status names them)", l.Blocks, l.Files)
}

// capabilityXattr holds a file's capabilities. The drive keeps none: the
// mount answers every GETXATTR of it with ENODATA without asking the
// journal (IgnoreSecurityLabels in mount.go; the kernel asks before every
// write), so Setxattr refuses it, as a file system without file
// capabilities does, and Listxattr leaves out one stored before.
const capabilityXattr = "security.capability"

// xattrNameErrno refuses what ext4 refuses to store: a name outside the
// four namespaces (EOPNOTSUPP), or a namespace with no name after it
// (EINVAL).
func xattrNameErrno(name string) syscall.Errno {
	for _, ns := range []string{"user.", "trusted.", "security.", "system."} {
		if rest, ok := strings.CutPrefix(name, ns); ok {
			if rest == "" {
				return syscall.EINVAL
			}
			return 0
		}
	}
	return syscall.EOPNOTSUPP
}

// xattrReply copies value into dest as getxattr(2) wants: a size probe
// when dest is empty, ERANGE with the size when it is too small.
func xattrReply(value, dest []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(value)), 0
	}
	if len(dest) < len(value) {
		return uint32(len(value)), syscall.ERANGE
	}
	return uint32(copy(dest, value)), 0
}

// The drive keeps no POSIX ACLs. An access ACL of the three base entries
// alone (owner, group, other) is the mode and nothing more, as POSIX.1e
// and acl(5) say, so setting one is a chmod: that is what ext4 does (it
// stores no such ACL), and what cp -a sends for every file and directory
// it copies (with it refused, cp -a sent a chmod after it: one more
// round trip a file). Any other ACL is refused with EOPNOTSUPP, so tools
// fall back to chmod, as on a file system mounted without ACLs; storing
// it as a plain attribute would let them "set permissions" that never
// reach the mode bits. Reading an ACL finds none (ENODATA) and removing
// one succeeds, as on ext4 for a file whose ACL is its mode.
const (
	aclAccess  = "system.posix_acl_access"
	aclVersion = 2 // POSIX_ACL_XATTR_VERSION

	// e_tag values of <linux/posix_acl.h>
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// isACL reports whether attr is a POSIX ACL.
func isACL(attr string) bool {
	return strings.HasPrefix(attr, "system.posix_acl_")
}

// errNotTrivial is an ACL with named users or groups, or a mask: more
// than a mode can say.
var errNotTrivial = errors.New("ACL has entries beyond owner, group and other")

// aclMode decodes an ACL in its extended-attribute form (a little-endian
// uint32 version, then 8-byte entries: uint16 tag, uint16 permissions,
// uint32 id) and returns the permission bits (0777) it is equivalent to.
// It fails with errNotTrivial for a well-formed ACL that a mode cannot
// hold, and with another error for bytes that are no ACL.
func aclMode(b []byte) (uint32, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return 0, fmt.Errorf("ACL of %d bytes: not 4 + 8 per entry", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != aclVersion {
		return 0, fmt.Errorf("ACL version %d, want %d", v, aclVersion)
	}
	var mode uint32
	var seen uint16
	trivial := true
	for e := b[4:]; len(e) > 0; e = e[8:] {
		tag, perm := binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:])
		if perm&^7 != 0 {
			return 0, fmt.Errorf("ACL entry with permissions %#o", perm)
		}
		switch tag {
		case aclUserObj, aclGroupObj, aclOther:
			if seen&tag != 0 {
				return 0, fmt.Errorf("ACL with tag %#x twice", tag)
			}
			seen |= tag
			switch tag {
			case aclUserObj:
				mode |= uint32(perm) << 6
			case aclGroupObj:
				mode |= uint32(perm) << 3
			default:
				mode |= uint32(perm)
			}
		case aclUser, aclGroup, aclMask:
			trivial = false
		default:
			return 0, fmt.Errorf("ACL entry with tag %#x", tag)
		}
	}
	if seen != aclUserObj|aclGroupObj|aclOther {
		return 0, errors.New("ACL without an owner, group or other entry")
	}
	if !trivial {
		return 0, errNotTrivial
	}
	return mode, nil
}

// setACLMode applies an access ACL that is a mode: its permission bits
// replace the file's. Only the owner or root may (the kernel checks that
// first). The kernel's rule clears set-group-ID when the caller is not
// of the file's group; only the caller's primary group is known here,
// so a set-group-ID file of another group is refused (tools then chmod,
// and the kernel, which knows every group of the caller, decides). The
// kernel, which does not cache ACLs for us, is told to forget the
// inode's attributes: without that it would check permissions against
// the old mode until they time out.
func (n *node) setACLMode(ctx context.Context, data []byte) syscall.Errno {
	perm, err := aclMode(data)
	if errors.Is(err, errNotTrivial) {
		return syscall.EOPNOTSUPP
	}
	if err != nil {
		return syscall.EINVAL
	}
	cur, err := n.fsys.j.GetAttr(settled(ctx), n.ino())
	if err != nil {
		return n.errno("setxattr", err)
	}
	var uid, gid uint32
	if c, ok := fuse.FromContext(ctx); ok {
		uid, gid = c.Uid, c.Gid
	}
	if uid != 0 && uid != cur.Uid {
		return syscall.EPERM
	}
	if cur.Mode&syscall.S_ISGID != 0 && uid != 0 && gid != cur.Gid {
		// The kernel keeps the bit for a member of the file's group
		// through a supplementary group, which the request does not
		// say: refused, the tool falls back to chmod, and the kernel
		// decides.
		return syscall.EOPNOTSUPP
	}
	mode := cur.Mode&(syscall.S_ISUID|syscall.S_ISGID|syscall.S_ISVTX) | perm
	a, err := n.fsys.j.SetAttr(settled(ctx), n.ino(), journal.SetAttr{Mode: &mode})
	if err != nil {
		return n.errno("setxattr", err)
	}
	n.remember(a)
	n.NotifyContent(-1, 0) // attributes only; ENOSYS before the mount is up
	return 0
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if isACL(attr) {
		return 0, syscall.ENODATA
	}
	if attr == StatusXattr {
		st, err := n.fsys.j.Status(settled(ctx), n.ino())
		if err != nil {
			return 0, n.errno("getxattr", err)
		}
		if v := n.rootLost(ctx); v != "" {
			return xattrReply([]byte(v), dest)
		}
		if st.State == journal.StateDurable && n.fsys.shardsDown != nil {
			short, err := n.fsys.shardsDown(settled(ctx), n.ino())
			if err != nil {
				return 0, n.errno("getxattr", err)
			}
			if short {
				st.State = journal.StateDegraded
			}
		}
		return xattrReply([]byte(statusText(st)), dest)
	}
	v, err := n.fsys.j.GetXattr(settled(ctx), n.ino(), attr)
	if err != nil {
		return 0, n.errno("getxattr", err)
	}
	return xattrReply(v, dest)
}

// Setxattr stores value; go-fuse lends data only during the call and the
// journal copies it. XATTR_CREATE and XATTR_REPLACE pass through (the
// journal's flags have the same values).
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if isACL(attr) && n.fsys.inoOff != 0 {
		return syscall.EROFS // a snapshot: before EOPNOTSUPP for an ACL that is more than the mode
	}
	if attr == aclAccess {
		return n.setACLMode(ctx, data)
	}
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	if attr == StatusXattr {
		return syscall.EPERM
	}
	if attr == capabilityXattr {
		return syscall.EOPNOTSUPP
	}
	if errno := xattrNameErrno(attr); errno != 0 {
		return errno
	}
	if flags&^(journal.XattrCreate|journal.XattrReplace) != 0 {
		return syscall.EINVAL
	}
	if attr == PinXattr && n.fsys.pins != nil {
		// XATTR_CREATE and XATTR_REPLACE as for any attribute: the pin
		// is one when the journal has it.
		return n.errno("setxattr", n.fsys.pins.SetXattr(settled(ctx), n.ino(), string(data) != "0", flags))
	}
	return n.errno("setxattr", n.fsys.j.SetXattr(settled(ctx), n.ino(), attr, data, flags))
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, err := n.fsys.j.ListXattr(settled(ctx), n.ino())
	if err != nil {
		return 0, n.errno("listxattr", err)
	}
	var list []byte
	for _, name := range names {
		if name == capabilityXattr || (name == PinXattr && n.fsys.pins != nil) {
			// A pin is this machine's choice, not the file's: cp -a,
			// rsync -X and tar --xattrs would pin every copy (getxattr
			// still reads it, as the status xattr).
			continue
		}
		list = append(list, name...)
		list = append(list, 0)
	}
	return xattrReply(list, dest)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if isACL(attr) {
		if n.fsys.inoOff != 0 {
			return syscall.EROFS // a snapshot changes nothing, as every other change there says
		}
		return 0 // none is kept: the mode stays what it is
	}
	if attr == StatusXattr {
		return syscall.EPERM
	}
	if attr == PinXattr && n.fsys.pins != nil {
		return n.errno("removexattr", n.fsys.pins.Unpin(settled(ctx), n.ino()))
	}
	return n.errno("removexattr", n.fsys.j.RemoveXattr(settled(ctx), n.ino(), attr))
}
