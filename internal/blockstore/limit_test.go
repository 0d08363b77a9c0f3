package blockstore

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The io.max line a v2 cgroup gets (into a stand-in file: the kernel's
// own file needs the io controller, which this kind of host keeps in v1).
func TestLimitV2Format(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "io.max"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Limit(dir, Device{Major: 7, Minor: 3}, Limits{ReadIOPS: 3000, WriteBPS: 125 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "io.max"))
	if want := "7:3 rbps=max wbps=131072000 riops=3000 wiops=max"; string(b) != want {
		t.Fatalf("io.max: %q, want %q", b, want)
	}
	if err := Limit(t.TempDir(), Device{Major: 7, Minor: 3}, Limits{}); err == nil {
		t.Fatal("Limit in a directory that is no cgroup")
	}
}

// A real throttle: direct writes and reads of a process in the cgroup go at
// the rate set for the volume's device.
func TestLimit(t *testing.T) {
	dir := testDir(t)
	parent := "/sys/fs/cgroup/blkio"
	if !exists(filepath.Join(parent, "blkio.throttle.read_bps_device")) {
		parent = "/sys/fs/cgroup"
		if b, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control")); !strings.Contains(string(b), "io") {
			t.Skip("no blkio hierarchy and no io controller enabled at the v2 root")
		}
	}
	cg := filepath.Join(parent, fmt.Sprintf("nubo-blockstore-test-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("removing cgroup: %v", err)
		}
	})
	s := openStore(t, dir)
	if err := s.Create(ctx, "vol-00000001", 64*mib, newKey(t)); err != nil {
		t.Fatal(err)
	}
	dev, err := s.Attach(ctx, "vol-00000001")
	if err != nil {
		t.Fatal(err)
	}
	if err := Limit(cg, dev, Limits{WriteBPS: 4 * mib, ReadBPS: 4 * mib}); err != nil {
		t.Fatal(err)
	}
	// 8 MiB at 4 MiB/s: about 2 s (the throttle lets a first slice through).
	for _, dd := range []string{
		"dd if=/dev/zero of=" + dev.Path + " bs=1M count=8 oflag=direct conv=fsync",
		"dd if=" + dev.Path + " of=/dev/null bs=1M count=8 iflag=direct",
	} {
		start := time.Now()
		out, err := exec.Command("sh", "-c", "echo $$ > "+cg+"/cgroup.procs && exec "+dd).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", dd, err, out)
		}
		if took := time.Since(start); took < 1500*time.Millisecond || took > 10*time.Second {
			t.Errorf("%s took %v at 4 MiB/s, want about 2 s", dd, took)
		}
	}
	// Lifted: the same again is fast.
	if err := Limit(cg, dev, Limits{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("sh", "-c", "echo $$ > "+cg+"/cgroup.procs && exec dd if="+dev.Path+" of=/dev/null bs=1M count=8 iflag=direct").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("unlimited read took %v", took)
	}
}
