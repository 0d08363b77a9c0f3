package image

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const capabilityXattr = "security.capability"

// ShiftOwnership adds base to the uid and gid of every file under root,
// root included, so that the tree belongs to a user namespace whose root is
// host uid base. It returns the apparent size of the tree's regular files.
//
// Symlinks are changed themselves (lchown), never followed. A file with
// several hard links is shifted once. chown(2) clears setuid and setgid bits
// and file capabilities, so the mode is set again afterwards and a
// security.capability attribute is saved and restored. The tree must be a
// single filesystem: a mount point below root is an error, so that a
// stray bind mount never gets the host's files shifted. Shifting is not
// idempotent: call it once per tree.
func ShiftOwnership(root string, base uint32) (size int64, err error) {
	var rootSt unix.Stat_t
	if err := unix.Lstat(root, &rootSt); err != nil {
		return 0, fmt.Errorf("shift %s: %w", root, err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return 0, err
	}
	mounts, err := mountsUnder(abs)
	if err != nil {
		return 0, err
	}
	for _, m := range mounts {
		if m != abs {
			return 0, fmt.Errorf("shift %s: %s is a mount point", root, m)
		}
	}
	type inode struct{ dev, ino uint64 }
	seen := make(map[inode]bool)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != rootSt.Dev {
			return fmt.Errorf("%s is on another filesystem: a mount point", p)
		}
		typ := st.Mode & unix.S_IFMT
		if st.Nlink > 1 && typ != unix.S_IFDIR {
			k := inode{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		uid, gid := uint64(st.Uid)+uint64(base), uint64(st.Gid)+uint64(base)
		if uid >= math.MaxUint32 || gid >= math.MaxUint32 {
			return fmt.Errorf("%s: uid %d or gid %d + %d overflows", p, st.Uid, st.Gid, base)
		}
		var caps []byte
		if typ == unix.S_IFREG {
			size += st.Size
			if caps, err = getXattr(p, capabilityXattr); err != nil {
				return err
			}
		}
		if err := unix.Lchown(p, int(uid), int(gid)); err != nil {
			return err
		}
		if typ != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
				return err
			}
		}
		if caps != nil {
			if err := unix.Lsetxattr(p, capabilityXattr, caps, 0); err != nil {
				return fmt.Errorf("%s: restore file capabilities: %w", p, err)
			}
		}
		return nil
	})
	return size, err
}

// getXattr reads extended attribute name of p (not following symlinks);
// nil if p has none.
func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		switch {
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case errors.Is(err, unix.ERANGE) && len(buf) < 1<<16:
			buf = make([]byte, 2*len(buf))
			continue
		case err != nil:
			return nil, fmt.Errorf("%s: read %s: %w", p, name, err)
		}
		return buf[:n], nil
	}
}
