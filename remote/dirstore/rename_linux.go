package dirstore

import "golang.org/x/sys/unix"

// renameNoReplace renames old to new unless new exists (fs.ErrExist-like
// unix.EEXIST then). Filesystems without the flag answer EINVAL.
func renameNoReplace(old, new string) error {
	return unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
}
