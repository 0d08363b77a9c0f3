package blockstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"nubo/internal/mountinfo"
)

// mkfsArgs make the pool's filesystem. Why each:
//   - -O encrypt: fscrypt policies on volume directories.
//   - -T largefile4: one inode per 4 MiB, as a volume is two inodes (its
//     directory and its file): inode tables shrink from 1/64 of the pool to
//     1/16384, so mkfs and the lazy init behind it write almost nothing.
//   - -m 0: only nubo writes here; root's 5 % reserve would be lost space.
//   - the journal stays: it is written only when the pool's metadata
//     changes (a volume's first write to a region allocates blocks, create,
//     delete), not for data, and it spares a full fsck of the whole pool,
//     every volume's file included, after a host crash.
//   - lazy_itable_init, lazy_journal_init: nothing zeroed at mkfs: the image
//     is sparse and made by punching (mke2fs discards a regular file), so it
//     reads as zeros already.
var mkfsArgs = []string{"-q", "-F", "-t", "ext4", "-O", "encrypt", "-T", "largefile4", "-m", "0",
	"-L", "nubo-ebs", "-E", "lazy_itable_init=1,lazy_journal_init=1"}

// mountFlags: the pool holds image files only; lazytime keeps timestamp
// updates (every write to a volume touches its file's mtime) in memory
// instead of in the journal.
const mountFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_LAZYTIME

// mountData: discard passes blocks freed in the pool (a deleted volume, a
// trim inside an instance) on to the image as holes, so the host gets the
// space back.
const mountData = "discard"

func (s *Store) openPool(ctx context.Context, size int64) error {
	if _, err := os.Stat(s.img); errors.Is(err, fs.ErrNotExist) {
		if err := makePool(ctx, s.img, size); err != nil {
			return err
		}
		s.log.Info("made pool", "image", s.img, "size", size)
	} else if err != nil {
		return err
	}
	d, attached, err := loopFind(s.img)
	if err != nil {
		return err
	}
	s.pool = d.Device
	if !attached {
		// Direct I/O: the pool's blocks are cached once, by the pool's own
		// filesystem, not a second time as pages of the image file.
		if s.pool, err = loopAttach(ctx, s.img, true); err != nil {
			return fmt.Errorf("attaching pool: %w", err)
		}
	}
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return err
	}
	devno, mounted, err := mountedDevice(s.root)
	if err != nil {
		return err
	}
	switch {
	case mounted && devno != unix.Mkdev(s.pool.Major, s.pool.Minor):
		err = fmt.Errorf("%s is mounted from device %d:%d, not the pool %s", s.root, unix.Major(devno), unix.Minor(devno), s.pool)
	case !mounted:
		if err = unix.Mount(s.pool.Path, s.root, "ext4", mountFlags, mountData); err != nil {
			err = fmt.Errorf("mounting pool %s at %s: %w", s.pool.Path, s.root, err)
		}
	}
	if err == nil {
		s.rootDir, err = os.Open(s.root)
	}
	if err != nil {
		if !attached {
			loopDetach(ctx, s.pool)
		}
		return err
	}
	if err := boundDirty(s.pool); err != nil {
		s.log.Warn("the pool's writeback stays unbounded", "err", err)
	}
	s.log.Debug("pool open", "device", s.pool.String(), "adopted", attached && mounted)
	s.removeUnfinished()
	return nil
}

// makePool makes the image under a temporary name, so a crash never leaves
// an unformatted pool.img behind.
func makePool(ctx context.Context, img string, size int64) error {
	tmp := img + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		out, cerr := exec.CommandContext(ctx, "mkfs.ext4", append(mkfsArgs, tmp)...).CombinedOutput()
		if cerr != nil {
			err = fmt.Errorf("mkfs.ext4: %w: %s", cerr, strings.TrimSpace(string(out)))
		}
	}
	if err == nil {
		err = os.Rename(tmp, img)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("making pool %s: %w", img, err)
	}
	return syncDir(filepath.Dir(img))
}

// removeUnfinished erases what a Create or a Delete cut short left
// (.new-vol-…, .del-vol-…).
func (s *Store) removeUnfinished() {
	entries, _ := os.ReadDir(s.root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".new-") || strings.HasPrefix(e.Name(), ".del-") {
			if _, err := s.erase(filepath.Join(s.root, e.Name())); err != nil {
				s.log.Warn("erasing an unfinished volume", "dir", e.Name(), "err", err)
			}
		}
	}
}

// Teardown detaches every volume, locks them all, unmounts the pool and
// detaches its loop device, and closes the store. pool.img stays: Open
// brings it all back (volumes locked). For tests and for taking a host out
// of service.
func (s *Store) Teardown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rootDir == nil {
		return errors.New("blockstore: store is closed")
	}
	vols, err := s.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range vols {
		if err := s.detach(ctx, id); err != nil {
			errs = append(errs, err)
		}
		if err := s.lockVolume(id); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.rootDir.Close() // an open directory would keep the pool busy
	s.rootDir = nil
	defer s.lock.Close()
	if err := unix.Unmount(s.root, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmounting pool: %w", err)
	}
	err = loopDetach(ctx, s.pool)
	if errors.Is(err, ErrBusy) {
		// A mount namespace made while the pool was mounted (an image
		// build, any unshare) holds a copy of the pool's mount; the kernel
		// unbinds the device when that namespace ends.
		s.log.Warn("pool device detaches when the last mount namespace holding the pool ends", "device", s.pool.Path)
		return nil
	}
	return err
}

// mountedDevice returns the device of the filesystem mounted at path (the
// topmost one), and whether one is.
func mountedDevice(path string) (uint64, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var dev uint64
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || mountinfo.Unescape(fields[4]) != path {
			continue
		}
		var maj, min uint32
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &maj, &min); err != nil {
			return 0, false, fmt.Errorf("mountinfo: %q: %w", fields[2], err)
		}
		dev, found = unix.Mkdev(maj, min), true
	}
	return dev, found, sc.Err()
}

// trim discards the pool's free blocks now (FITRIM), rather than when the
// discard mount option gets to them: Delete gives the host its space back
// before it returns. Groups trimmed before and unchanged since are skipped.
func (s *Store) trim() error {
	r := struct{ start, len, minlen uint64 }{0, ^uint64(0), 0}
	if err := ioctl(s.rootDir, fitrim, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("trimming pool: %w", err)
	}
	return nil
}

// fitrim is FITRIM, _IOWR('X', 121, struct fstrim_range), which x/sys lacks.
const fitrim = 0xc0185879

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// poolDirtyBytes caps the pool's dirty page cache. Encrypted volumes are
// served buffered (fscrypt without inline encryption has no direct I/O), so
// their writes become dirty pages that are encrypted at writeback. Left to
// the global thresholds (gigabytes here), writeback starts late and an
// fsync pays for all of it at once; bounded, encryption runs alongside the
// writes, on the other core.
const poolDirtyBytes = 64 << 20

func boundDirty(dev Device) error {
	bdi := fmt.Sprintf("/sys/class/bdi/%d:%d/", dev.Major, dev.Minor)
	if err := os.WriteFile(bdi+"max_bytes", []byte(strconv.Itoa(poolDirtyBytes)), 0); err != nil {
		return err
	}
	if err := os.WriteFile(bdi+"strict_limit", []byte("1"), 0); err != nil {
		return err
	}
	return os.WriteFile(bdi+"read_ahead_kb", []byte("4096"), 0)
}
