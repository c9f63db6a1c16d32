package fs

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/meshdrive/meshdrive/journal"
)

// StatusXattr is the read-only extended attribute that says how safe a
// file's data is: "durable", "degraded" or "local (N bytes pending)". It
// is computed from journal.Status on every read and not listed by
// listxattr, so copying tools (cp -a, rsync -X) do not carry it along.
const StatusXattr = "user.meshdrive.status"

// statusText renders a FileStatus as the xattr value.
func statusText(s journal.FileStatus) string {
	switch s.State {
	case journal.StateDurable:
		return "durable"
	case journal.StateDegraded:
		return "degraded"
	case journal.StateLocal:
		return fmt.Sprintf("local (%d bytes pending)", s.PendingBytes)
	}
	return s.State.String()
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

// isACL reports whether attr is a POSIX ACL. The drive keeps no ACLs:
// storing system.posix_acl_access as a plain attribute would let cp -a
// "set permissions" that never reach the mode bits. Refusing it makes
// tools fall back to chmod, as on a file system mounted without ACLs.
func isACL(attr string) bool {
	return strings.HasPrefix(attr, "system.posix_acl_")
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
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	if attr == StatusXattr {
		return syscall.EPERM
	}
	if flags&^(journal.XattrCreate|journal.XattrReplace) != 0 {
		return syscall.EINVAL
	}
	if attr == PinXattr && n.fsys.pins != nil {
		if string(data) == "0" {
			return n.errno("setxattr", n.fsys.pins.Unpin(settled(ctx), n.ino()))
		}
		return n.errno("setxattr", n.fsys.pins.Pin(settled(ctx), n.ino()))
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
		list = append(list, name...)
		list = append(list, 0)
	}
	return xattrReply(list, dest)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	if attr == StatusXattr {
		return syscall.EPERM
	}
	if attr == PinXattr && n.fsys.pins != nil {
		return n.errno("removexattr", n.fsys.pins.Unpin(settled(ctx), n.ino()))
	}
	return n.errno("removexattr", n.fsys.j.RemoveXattr(settled(ctx), n.ino(), attr))
}
