package blockstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"nubo/internal/mountinfo"
)

const testPool = 1 << 30

// testDir returns a directory for a store. When the test ends, whatever
// loop device or mount of that directory is left is torn down, also when the
// test failed; and if the test passed, anything left is an error.
func testDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices, mounts, fscrypt keys")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left := sweep(dir); len(left) > 0 && !t.Failed() {
			t.Errorf("left behind: %v", left)
		}
		if left := sweep(dir); len(left) > 0 {
			t.Errorf("could not clean up: %v", left)
		}
	})
	return dir
}

// sweep detaches the loop devices and unmounts the mounts whose files are
// under dir (volumes first, then the pool's mount, then the pool's device),
// and returns what it found.
func sweep(dir string) []string {
	var left []string
	devs, _ := loopBound()
	for _, d := range devs {
		if strings.HasPrefix(d.backing, dir+"/") && !strings.HasSuffix(d.backing, "pool.img") {
			left = append(left, d.Path+" "+d.backing)
			loopDetach(context.Background(), d.Device)
		}
	}
	for _, m := range mountsUnder(dir) {
		left = append(left, "mount "+m)
		if unix.Unmount(m, 0) != nil {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	for _, d := range devs {
		if strings.HasPrefix(d.backing, dir+"/") && strings.HasSuffix(d.backing, "pool.img") && !detachPending(d.Device) {
			left = append(left, d.Path+" "+d.backing)
			loopDetach(context.Background(), d.Device)
		}
	}
	return left
}

// detachPending: the device was detached while another mount namespace
// still held the pool's filesystem (a process that unshared its mount
// namespace meanwhile, as mmdebstrap and `unshare` in other packages'
// tests do, keeps a copy of every mount); the kernel frees it when that
// namespace goes. Not a leak.
func detachPending(dev Device) bool {
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev.Path) + "/loop/autoclear")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			if p := mountinfo.Unescape(f[4]); p == dir || strings.HasPrefix(p, dir+"/") {
				ms = append([]string{p}, ms...) // innermost first
			}
		}
	}
	return ms
}

// openStore opens a store in dir whose cleanup tears it down if the test
// left it open.
func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: dir, PoolSize: testPool, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.rootDir != nil {
			err := s.Teardown(context.Background())
			if errors.Is(err, ErrBusy) && detachPending(s.pool) {
				t.Logf("teardown: %v (another mount namespace holds the pool; the kernel detaches it when that goes)", err)
			} else if err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
	})
	return s
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newKey(t *testing.T) []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

// alignedBuf returns n bytes, page-aligned as O_DIRECT wants, holding pattern repeated.
func alignedBuf(t *testing.T, n int, pattern []byte) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	for i := 0; i < n; i += copy(b[i:], pattern) {
	}
	return b
}

// writeDev writes data at off through dev with O_DIRECT and flushes it.
func writeDev(t *testing.T, dev Device, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(dev.Path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatalf("writing %s at %d: %v", dev.Path, off, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// checkDev reads len(want) bytes at off through dev with O_DIRECT.
func checkDev(t *testing.T, dev Device, off int64, want []byte) {
	t.Helper()
	f, err := os.OpenFile(dev.Path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := alignedBuf(t, len(want), []byte{0})
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatalf("reading %s at %d: %v", dev.Path, off, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s at %d: read %q…, want %q…", dev.Path, off, got[:32], want[:32])
	}
}

func devSize(t *testing.T, dev Device) int64 {
	t.Helper()
	f, err := os.Open(dev.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hostFilesContaining returns the files under dir, on dir's own filesystem
// (the pool's mount, where plaintext is visible, is another), that contain
// marker. Only the data of sparse files is read.
func hostFilesContaining(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	var root unix.Stat_t
	if err := unix.Stat(dir, &root); err != nil {
		t.Fatal(err)
	}
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev {
			return fs.SkipDir
		}
		if d.Type().IsRegular() && fileContains(t, p, marker) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func fileContains(t *testing.T, path string, marker []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	buf := make([]byte, 4<<20)
	keep := len(marker) - 1
	for off := int64(0); ; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return false // no data past off
		}
		if err != nil {
			t.Fatal(err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		// Scan [data, hole) in chunks that overlap by len(marker)-1 bytes.
		for pos := data; pos < hole; pos += int64(len(buf) - keep) {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-pos)], pos)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if bytes.Contains(buf[:n], marker) {
				return true
			}
			if pos+int64(n) >= hole {
				break
			}
		}
		off = hole
	}
}
