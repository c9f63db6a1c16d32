package dirstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVolumeTellsMachinesApart: df counts the nodes of one volume once
// (remote.Grid.Capacity), so two machines must never share a volume's
// name. Node servers made from one image share their host name and their
// disks' device numbers (a Raspberry Pi's root is 179:2 on every one);
// their machine ids, made at each system's first boot, differ.
func TestVolumeTellsMachinesApart(t *testing.T) {
	const dev = 179<<8 | 2
	a, b := volumeName("raspberrypi", "3d1219c7c4c5404aaa1f6d2a48adfda4", dev), volumeName("raspberrypi", "9f0e5bb1d07a4c3e8e2f6a1b2c3d4e5f", dev)
	if a == b {
		t.Fatalf("two machines called raspberrypi, with disk %x each, share the volume %q: df would count them as one disk", dev, a)
	}
	if c := volumeName("raspberrypi", "3d1219c7c4c5404aaa1f6d2a48adfda4", dev+1); c == a {
		t.Fatalf("two disks of one machine share the volume %q", a)
	}

	// This machine: two directories of one disk are one volume, named
	// with this machine's id when it has one.
	dir := t.TempDir()
	for _, d := range []string{"n1", "n2"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	v1, v2 := volume(filepath.Join(dir, "n1")), volume(filepath.Join(dir, "n2"))
	if v1 == "" || v1 != v2 {
		t.Fatalf("two directories of one disk: volumes %q and %q, want one", v1, v2)
	}
	if id := machineID(); id != "" && !strings.Contains(v1, id) {
		t.Fatalf("volume %q does not name this machine's id %s", v1, id)
	}
}
