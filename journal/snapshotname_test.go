package journal

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCheckSnapshotName: a name an unnamed snapshot could have (its time
// name, with or without the "-SEQ" of a second's second snapshot) is
// refused, so two snapshots never share a name; so is one that is not
// UTF-8 or holds a control or invisible character; other names pass.
func TestCheckSnapshotName(t *testing.T) {
	tn := TimeName(time.Date(2026, 12, 6, 14, 15, 0, 0, time.UTC))
	for _, bad := range []string{tn, tn + "-7", tn + "x", TimeName(time.Now()), "", ".", "..", "a/b", "a\x00", strings.Repeat("x", 101),
		"caf\xe9", "\x1b[2Jwiped", "two\nlines", "cr\rforged", "tab\tname", "rtl\u202eexe.txt"} {
		if err := CheckSnapshotName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckSnapshotName(%q) = %v; want ErrInvalid", bad, err)
		}
	}
	for _, ok := range []string{"before-upgrade", "2026", "2026-12-06", "2026-12-06 backup", tn[:len(tn)-1], "x" + tn, strings.Repeat("x", 100), "café", "před upgradem", "日本語\u3000メモ"} {
		if err := CheckSnapshotName(ok); err != nil {
			t.Errorf("CheckSnapshotName(%q) = %v; want nil", ok, err)
		}
	}
}
