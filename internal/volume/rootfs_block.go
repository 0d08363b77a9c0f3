package volume

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A block root volume is an ext4 filesystem holding an overlay's upper/
// and work/ directories. The host mounts it (MountFS) and then the overlay
// over the image's root filesystem (MountOverlay): a launch copies nothing,
// the volume holds only what its instance changed, and it is a real EBS
// volume (encrypted at rest, snapshotted, kept after termination, attached
// elsewhere as an ext4 filesystem whose upper/ is the instance's changes).

// HasFilesystem reports whether dev holds an ext4 (or ext2/3) superblock.
func HasFilesystem(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+0x38); err != nil {
		return false, fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	return binary.LittleEndian.Uint16(magic[:]) == 0xef53, nil
}

// Format makes an empty ext4 filesystem on dev, fast: inode tables and
// journal are not zeroed (a new volume reads as zeros already, and the
// mount's noinit_itable keeps the kernel from zeroing them later, which
// would also write behind a snapshot's freeze).
func Format(ctx context.Context, dev string) error {
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-L", "root",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", dev).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", dev, err, out)
	}
	return nil
}

// MountFS mounts the root volume's filesystem from dev at dir (idempotent).
func MountFS(dev, dir string) error {
	if mounted, err := IsMounted(dir); err != nil || mounted {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_NODEV|unix.MS_NOSUID, "noinit_itable"); err != nil {
		return fmt.Errorf("mounting %s at %s: %w", dev, dir, err)
	}
	return nil
}

// MountOverlay mounts image (lower) and the upper layer kept in the root
// volume's filesystem at fs onto target (idempotent). The upper dir takes
// the image root's owner (uid/gid base) and mode: the overlay's root does.
func MountOverlay(fs, image, target string, base uint32) error {
	if mounted, err := IsMounted(target); err != nil || mounted {
		return err
	}
	upper, work := filepath.Join(fs, "upper"), filepath.Join(fs, "work")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	fi, err := os.Stat(image)
	if err != nil {
		return fmt.Errorf("image root %s: %w", image, err)
	}
	if err := os.Chown(upper, int(base), int(base)); err != nil {
		return err
	}
	if err := os.Chmod(upper, fi.Mode().Perm()); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", image, upper, work)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the root overlay at %s: %w", target, err)
	}
	return nil
}

// UnmountFS unmounts dir if mounted (idempotent), lazily if busy.
func UnmountFS(dir string) error { return Roots{}.Unmount(dir) }

// SyncFS flushes the filesystem mounted at dir to its device.
func SyncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// NeedsGrow reports whether the ext4 filesystem on dev is smaller than
// the device (a root volume restored from a smaller snapshot, or grown by
// ModifyVolume).
func NeedsGrow(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return false, fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	le := binary.LittleEndian
	blocks := uint64(le.Uint32(sb[0x04:]))
	if le.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	blockSize := uint64(1024) << le.Uint32(sb[0x18:])
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return false, fmt.Errorf("size of %s: %w", dev, err)
	}
	return blocks*blockSize+blockSize <= size, nil
}

// Grow grows the filesystem on dev to the device's size: online when
// mounted (the kernel asks for CAP_SYS_RESOURCE), else offline on a
// filesystem unmounted cleanly (-f: no fsck first).
func Grow(ctx context.Context, dev string, mounted bool) error {
	args := []string{dev}
	if !mounted {
		args = []string{"-f", dev}
	}
	out, err := exec.CommandContext(ctx, "resize2fs", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("resize2fs %s: %w: %s", dev, err, out)
	}
	return nil
}
