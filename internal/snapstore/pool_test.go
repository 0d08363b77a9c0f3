package snapstore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/blockstore"
	"nubo/internal/mountinfo"
)

// Tests on real blockstore pools: loop devices, an ext4 pool, fscrypt.

const gib = 1 << 30

var ctx = context.Background()

// testPool opens a pool in a temporary directory; when the test ends it is
// torn down, and whatever loop device or mount is still under the
// directory (a failed test) is removed.
func testPool(t *testing.T) *blockstore.Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices, mounts, fscrypt keys")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sweepDir(t, dir) })
	p, err := blockstore.Open(ctx, blockstore.Config{Dir: filepath.Join(dir, "ebs"), PoolSize: 8 * gib, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return p
}

// sweepDir unmounts what is mounted under dir and detaches the loop
// devices whose backing files are there.
func sweepDir(t *testing.T, dir string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 4 {
			if p := mountinfo.Unescape(f[4]); strings.HasPrefix(p, dir+"/") {
				t.Errorf("left mounted: %s", p)
				if unix.Unmount(p, 0) != nil {
					unix.Unmount(p, unix.MNT_DETACH)
				}
			}
		}
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, l := range loops {
		if b, err := os.ReadFile(l); err == nil && strings.HasPrefix(string(b), dir+"/") {
			dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(l)))
			t.Errorf("left attached: %s (%s)", dev, strings.TrimSpace(string(b)))
			exec.Command("losetup", "-d", dev).Run()
		}
	}
}

// fill writes n pseudo-random bytes (seeded) at off through the host's
// view of the volume, and syncs.
func fill(t *testing.T, f *os.File, off, n int64, seed uint64) {
	t.Helper()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	buf := make([]byte, 8<<20)
	for done := int64(0); done < n; {
		m := min(int64(len(buf)), n-done)
		r.Read(buf[:m])
		if _, err := f.WriteAt(buf[:m], off+done); err != nil {
			t.Fatal(err)
		}
		done += m
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func openVolume(t *testing.T, p *blockstore.Store, id string, flag int) *os.File {
	t.Helper()
	f, err := p.OpenFile(ctx, id, flag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func volumeHash(t *testing.T, f *os.File, size int64) [32]byte {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// TestIncrementalOnPool: 1 GiB of random data in a volume, a snapshot; 10
// MiB changed, a second snapshot stores at most 12 MiB more; the first is
// deleted and the second restores bit for bit into a new volume.
func TestIncrementalOnPool(t *testing.T) {
	p := testPool(t)
	s, l := testStore(t), newLineage(t, true)
	const id = "vol-00000001"
	if err := p.Create(ctx, id, gib, nil); err != nil {
		t.Fatal(err)
	}
	f := openVolume(t, p, id, os.O_RDWR)
	fill(t, f, 0, gib, 1)
	src := openVolume(t, p, id, os.O_RDONLY|unix.O_DIRECT)
	st1, err := s.Take(ctx, l, "snap-00000001", Source{File: src, Size: gib}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	full := usage(t, s, l)
	fill(t, f, 300<<20+4096, 10<<20, 2) // 10 MiB, not chunk-aligned: 21 chunks
	st2, err := s.Take(ctx, l, "snap-00000002", Source{File: src, Size: gib}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	grew := usage(t, s, l) - full
	t.Logf("1 GiB volume: full snapshot %v (read %v), %d MiB stored; after 10 MiB changed: %v (read %v), %.1f MiB more",
		st1.Took.Round(time.Millisecond), st1.ReadTime.Round(time.Millisecond), full>>20,
		st2.Took.Round(time.Millisecond), st2.ReadTime.Round(time.Millisecond), float64(grew)/(1<<20))
	if full < gib || grew > 12<<20 || st2.NewChunks != 21 {
		t.Fatalf("stored %d bytes, then %d more in %d chunks; want ≥ 1 GiB, then ≤ 12 MiB", full, grew, st2.NewChunks)
	}
	want := volumeHash(t, f, gib)
	if _, err := s.Delete(ctx, l.ID, "snap-00000001"); err != nil {
		t.Fatal(err)
	}
	if n := usage(t, s, l); n != full {
		t.Fatalf("after deleting the first snapshot the lineage holds %d bytes; want %d (the 21 replaced chunks gone)", n, full)
	}
	const restored = "vol-00000002"
	if err := p.Create(ctx, restored, 2*gib, nil); err != nil { // larger than the snapshot, as CreateVolume allows
		t.Fatal(err)
	}
	dst := openVolume(t, p, restored, os.O_RDWR|unix.O_DIRECT)
	st, err := s.Restore(ctx, l, "snap-00000002", dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore of 1 GiB: %v (%.0f MiB/s)", st.Took.Round(time.Millisecond), float64(gib>>20)/st.Took.Seconds())
	if volumeHash(t, dst, gib) != want {
		t.Fatal("the restored volume differs from the one snapshotted")
	}
}

// TestEncryptedVolume: an encrypted volume (fscrypt) snapshotted through
// its plaintext view, restored into another encrypted volume with its own
// key; the pool and the snapshot store never hold the plaintext.
func TestEncryptedVolume(t *testing.T) {
	p := testPool(t)
	s, l := testStore(t), newLineage(t, true)
	key1, key2 := random(blockstore.KeySize), random(blockstore.KeySize)
	if err := p.Create(ctx, "vol-00000001", 64<<20, key1); err != nil {
		t.Fatal(err)
	}
	marker := []byte("nubo-encrypted-volume-marker-" + string(hexs(random(8))))
	f := openVolume(t, p, "vol-00000001", os.O_RDWR)
	fill(t, f, 0, 16<<20, 3)
	for off := int64(0); off < 16<<20; off += 1 << 20 {
		writeAt(t, f, off, marker)
	}
	f.Sync()
	src := openVolume(t, p, "vol-00000001", os.O_RDONLY|unix.O_DIRECT)
	if _, err := s.Take(ctx, l, "snap-00000001", Source{File: src, Size: 64 << 20}, Options{}); err != nil {
		t.Fatal(err)
	}
	if found := filesContaining(t, s.dir, marker); len(found) > 0 {
		t.Fatalf("plaintext in the snapshot store: %v", found)
	}
	if err := p.Create(ctx, "vol-00000002", 64<<20, key2); err != nil {
		t.Fatal(err)
	}
	dst := openVolume(t, p, "vol-00000002", os.O_RDWR|unix.O_DIRECT)
	if _, err := s.Restore(ctx, l, "snap-00000001", dst, Options{}); err != nil {
		t.Fatal(err)
	}
	if volumeHash(t, dst, 64<<20) != volumeHash(t, f, 64<<20) {
		t.Fatal("the restored encrypted volume differs")
	}
}

// TestFrozenPointInTime: a process of an instance's cgroup appends to a
// file on an ext4 filesystem on an attached volume, without pause. The
// snapshot taken while frozen holds exactly the lines written before the
// freeze (syncfs flushed them), and restores to a filesystem that mounts
// and checks clean; the process goes on once thawed.
func TestFrozenPointInTime(t *testing.T) {
	p := testPool(t)
	s, l := testStore(t), newLineage(t, false)
	cg := testCgroup(t)
	const id = "vol-00000001"
	if err := p.Create(ctx, id, 256<<20, nil); err != nil {
		t.Fatal(err)
	}
	dev, err := p.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Detach(ctx, id) })
	if out, err := exec.Command("mkfs.ext4", "-q", dev.Path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v: %s", err, out)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o700)
	if err := unix.Mount(dev.Path, mnt, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	w := startWriter(t, cg, filepath.Join(mnt, "log"))
	waitLines(t, filepath.Join(mnt, "log"), 1000)

	fz := &Freezer{Root: filepath.Dir(cg), Log: testLog(t)}
	start := time.Now()
	z, err := fz.Freeze(ctx, filepath.Base(cg), []uint64{unix.Mkdev(dev.Major, dev.Minor)})
	if err != nil {
		t.Fatal(err)
	}
	frozeIn := time.Since(start)
	defer z.Thaw()
	atFreeze := countLines(t, filepath.Join(mnt, "log"))
	src := openVolume(t, p, id, os.O_RDONLY|unix.O_DIRECT)
	var atThaw int
	st, err := s.Take(ctx, l, "snap-00000001", Source{File: src, Size: 256 << 20}, Options{Read: func() {
		atThaw = countLines(t, filepath.Join(mnt, "log"))
		z.Thaw()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n := atThaw; n != atFreeze {
		t.Fatalf("the frozen writer went on: %d lines at the freeze, %d at the thaw", atFreeze, n)
	}
	t.Logf("freeze (processes stopped, syncfs, I/O drained) %v; frozen for %v in all, %d chunks read", frozeIn.Round(time.Microsecond),
		z.Took().Round(time.Microsecond), st.Chunks)
	waitLines(t, filepath.Join(mnt, "log"), atFreeze+1000) // thawed: it writes again
	w.stop()

	// The snapshot, restored and mounted: exactly the lines of the freeze.
	if err := p.Create(ctx, "vol-00000002", 256<<20, nil); err != nil {
		t.Fatal(err)
	}
	dst := openVolume(t, p, "vol-00000002", os.O_RDWR|unix.O_DIRECT)
	if _, err := s.Restore(ctx, l, "snap-00000001", dst, Options{}); err != nil {
		t.Fatal(err)
	}
	dev2, err := p.Attach(ctx, "vol-00000002")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Detach(ctx, "vol-00000002") })
	mnt2 := filepath.Join(t.TempDir(), "mnt2")
	os.Mkdir(mnt2, 0o700)
	if err := unix.Mount(dev2.Path, mnt2, "ext4", 0, ""); err != nil { // replays the journal
		t.Fatal(err)
	}
	got := countLines(t, filepath.Join(mnt2, "log"))
	if err := unix.Unmount(mnt2, 0); err != nil {
		t.Fatal(err)
	}
	if got != atFreeze {
		t.Fatalf("the snapshot holds %d lines; %d were written before the freeze", got, atFreeze)
	}
	if out, err := exec.Command("e2fsck", "-fn", dev2.Path).CombinedOutput(); err != nil {
		t.Fatalf("the restored filesystem does not check clean: %v\n%s", err, out)
	}
}

// testCgroup makes a freezer cgroup parent/instance for the test and
// removes it (thawed, its processes killed) at the end.
func testCgroup(t *testing.T) string {
	t.Helper()
	root := "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(root, "freezer.state")); err == nil || !exists(root) {
		t.Skip("no v1 freezer hierarchy at " + root)
	}
	parent := filepath.Join(root, fmt.Sprintf("nubo-snapstore-test-%d", os.Getpid()))
	dir := filepath.Join(parent, "i-0123456789abcdef0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		writeState(dir, "THAWED")
		pids, _ := cgroupPids(dir)
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		for i := 0; i < 100; i++ {
			if os.Remove(dir) == nil || !exists(dir) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := os.Remove(parent); err != nil {
			t.Errorf("removing the test cgroup: %v", err)
		}
	})
	return dir
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

type writer struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startWriter runs, in cgroup cg, a shell that appends numbered lines to
// path as fast as it can.
func startWriter(t *testing.T, cg, path string) *writer {
	t.Helper()
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec sh -c 'n=0; while :; do n=$((n+1)); echo "line $n" >> %s; done'`, cg, path)
	w := &writer{cmd: exec.Command("sh", "-c", script), done: make(chan struct{})}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.cmd.Wait(); close(w.done) }()
	t.Cleanup(w.stop)
	return w
}

func (w *writer) stop() {
	select {
	case <-w.done:
		return
	default:
	}
	w.cmd.Process.Kill()
	<-w.done
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		if want := "line " + strconv.Itoa(n); sc.Text() != want {
			t.Fatalf("%s line %d: %q, want %q", path, n, sc.Text(), want)
		}
	}
	return n
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for countLines(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %d lines", path, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
