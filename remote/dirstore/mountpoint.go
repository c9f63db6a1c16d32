package dirstore

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// DefaultFstab is the fstab New reads when Options.Fstab is empty.
const DefaultFstab = "/etc/fstab"

// unmountedMount returns the one of dir and its ancestors that fstab
// names as a mount point while nothing is mounted there, or "" when
// there is none or either table cannot be read. A store there would be
// made on the file system under a disk that is not mounted (a node
// served from the disk's own mount point, with the disk not mounted at
// boot), and repair would fill that file system.
func unmountedMount(dir, fstab string) string {
	want := mountTargets(fstab, 1)
	if len(want) == 0 {
		return ""
	}
	mounted := mountTargets("/proc/self/mountinfo", 4)
	if len(mounted) == 0 {
		return "" // not Linux, or no /proc: unknown
	}
	// The table may name a path through a symbolic link, and dir may
	// lead through one: each is looked at as given and resolved.
	for _, d := range []string{filepath.Clean(dir), resolved(dir)} {
		for p := d; p != filepath.Dir(p); p = filepath.Dir(p) {
			if want[p] && !mounted[p] && !mounted[resolved(p)] {
				return p
			}
		}
	}
	return ""
}

// resolved is path with its symbolic links resolved, as far as it exists.
func resolved(path string) string {
	path = filepath.Clean(path)
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	parent := filepath.Dir(path)
	if parent == path {
		return path
	}
	return filepath.Join(resolved(parent), filepath.Base(path))
}

// mountTargets reads the mount points in field col (from 0) of each line
// of a table in the format of fstab or mountinfo (octal escapes, #
// comments); nil when it cannot be read.
func mountTargets(path string, col int) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) <= col {
			continue
		}
		if t := unescapeMount(fields[col]); filepath.IsAbs(t) && t != "/" {
			out[filepath.Clean(t)] = true
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for a space) of a mount
// table's field.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
