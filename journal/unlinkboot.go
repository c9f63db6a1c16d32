package journal

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// bootName is the file beside the unlink log that holds the boot the log
// is written in (markBoot), so that the next Open knows whether the
// machine stopped in between (restarted).
const bootName = "unlinks.boot"

// bootID reads this boot's identity (tests replace it).
var bootID = func() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b)), err
}

// restarted reports whether the unlink log in dir was written in an
// earlier boot of the machine: false when either is unknown.
func restarted(dir string) bool {
	was, err := os.ReadFile(filepath.Join(dir, bootName))
	if err != nil || len(bytes.TrimSpace(was)) == 0 {
		return false
	}
	now, err := bootID()
	return err == nil && now != "" && now != string(bytes.TrimSpace(was))
}

// markBoot records this boot as the unlink log's, durably, before any
// record of it is appended (once per boot: it is kept when it says so
// already). A failure only costs the next Open its knowledge of a
// restart (logged): the record of an earlier boot is removed, or that
// Open would take damage done in this boot for a power cut's.
func markBoot(dir string, log *slog.Logger) {
	now, err := bootID()
	if err != nil || now == "" {
		return
	}
	path := filepath.Join(dir, bootName)
	if was, err := os.ReadFile(path); err == nil && string(bytes.TrimSpace(was)) == now {
		return
	}
	err = writeSynced(path+".tmp", []byte(now+"\n"))
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err == nil {
		return
	}
	os.Remove(path + ".tmp")
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		log.Error("journal: cannot record the boot the unlink log is written in, nor remove the record of an earlier one: "+
			"a damaged unlink log will be taken for a power cut's; remove the file", "path", path, "err", err, "remove_err", rerr)
		return
	}
	log.Warn("journal: cannot record the boot the unlink log is written in", "path", path, "err", err)
}

// writeSynced writes b to a new file at path and fsyncs it.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
