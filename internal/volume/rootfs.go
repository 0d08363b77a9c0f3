package volume

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"nubo/internal/mountinfo"
)

// Roots keeps root volumes on this host: each is an overlay whose lower layer
// is the image's root filesystem (shared, never written) and whose upper layer
// is the volume's own data in Dir/<vol-id>, so a launch copies nothing and a
// volume holds only what its instance changed.
type Roots struct {
	Dir string // e.g. DATA/volumes
}

// Mount mounts volume id over image at target (idempotent). The volume's
// top directory is owned by uid/gid base, the instance's root.
func (r Roots) Mount(id, image, target string, base uint32) error {
	if err := MountOverlay(filepath.Join(r.Dir, id), image, target, base); err != nil {
		return fmt.Errorf("root volume %s: %w", id, err)
	}
	return nil
}

// Unmount unmounts target if mounted (idempotent).
func (r Roots) Unmount(target string) error {
	mounted, err := IsMounted(target)
	if err != nil || !mounted {
		return err
	}
	if err := unix.Unmount(target, 0); err != nil {
		// Busy mounts (a shell inside still open): detach lazily, the kernel frees it when unused.
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
	}
	return nil
}

// Delete removes a volume's data (idempotent). Its mount must be gone.
func (r Roots) Delete(id string) error {
	if err := os.RemoveAll(filepath.Join(r.Dir, id)); err != nil {
		return fmt.Errorf("deleting volume %s: %w", id, err)
	}
	return nil
}

// IsMounted reports whether path is a mount point.
func IsMounted(path string) (bool, error) { return mountinfo.IsMounted(path) }
