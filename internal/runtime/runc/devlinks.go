package runc

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

// Device nodes and links in an instance's /dev.

// injectNode binds the host node at dev.Name in the running instance whose
// PID 1 is pid, and links /dev/xvdX to a /dev/sdX name. A node that is
// there already is left as it is.
func injectNode(pid int, node string, dev runtime.BlockDevice, uid, gid int) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, node, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", node, err)
	}
	defer unix.Close(tree)
	rdev := unix.Mkdev(dev.Major, dev.Minor)
	return inProc(pid, uid, gid, func() error {
		var st unix.Stat_t
		err := unix.Lstat(dev.Name, &st)
		switch {
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev:
			// bound already
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
			// the mount point of a node unmounted inside
			if err := moveInto(tree, dev.Name); err != nil {
				return err
			}
		case errors.Is(err, unix.ENOENT):
			fd, err := unix.Open(dev.Name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
			if err != nil {
				return fmt.Errorf("making %s: %w", dev.Name, err)
			}
			unix.Close(fd)
			if err := moveInto(tree, dev.Name); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			return fmt.Errorf("%s exists in the instance and is not the device", dev.Name)
		}
		return makeLink("", dev.Name)
	})
}

func moveInto(tree int, path string) error {
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("binding the node at %s: %w", path, err)
	}
	return nil
}

// makeLink links /dev/xvdX to sdX below root (as the calling thread sees
// paths) if name is /dev/sdX. Something else at the link's place is left.
func makeLink(root, name string) error {
	link, ok := xvdLink(name)
	if !ok {
		return nil
	}
	err := unix.Symlink(filepath.Base(name), filepath.Join(root, link))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("linking %s: %w", link, err)
	}
	return nil
}

// removeNode takes dev's node and link out of the running instance whose
// PID 1 is pid.
func removeNode(pid int, dev runtime.BlockDevice) error {
	rdev := unix.Mkdev(dev.Major, dev.Minor)
	return inProc(pid, 0, 0, func() error {
		// Bound more than once (by the instance itself, say): unbind all.
		for range 8 {
			var st unix.Stat_t
			if err := unix.Lstat(dev.Name, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != rdev {
				break
			}
			if err := unix.Unmount(dev.Name, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				return fmt.Errorf("unbinding %s: %w", dev.Name, err)
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(dev.Name, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0 {
			if err := unix.Unlink(dev.Name); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
		if link, ok := xvdLink(dev.Name); ok {
			if target, err := os.Readlink(link); err == nil && target == filepath.Base(dev.Name) {
				if err := unix.Unlink(link); err != nil && !errors.Is(err, unix.ENOENT) {
					return err
				}
			}
		}
		return nil
	})
}

// The links of devices present from boot are made by an OCI createRuntime
// hook (the shim binary again, like delegate.go's), which runs once runc
// has mounted the instance's /dev and bound its nodes, before PID 1 runs:
//
//	Config.Shim + hook dev-links --uid N --gid N --rootfs DIR NAME…
//
// It runs in the host's namespaces; PID 1-to-be is in the instance's
// mount namespace, where the root filesystem is still at DIR.
const hookDevLinks = "dev-links"

// devLinksHook is the hook that links names (e.g. /dev/sdf) in an
// instance whose root is uid:gid on the host; nil if no name needs one.
func devLinksHook(shim []string, uid, gid uint32, rootfs string, names []string) *specs.Hook {
	var links []string
	for _, n := range names {
		if _, ok := xvdLink(n); ok {
			links = append(links, n)
		}
	}
	if len(links) == 0 {
		return nil
	}
	args := append(slices.Clone(shim), hookCommand, hookDevLinks,
		"--uid", strconv.FormatUint(uint64(uid), 10), "--gid", strconv.FormatUint(uint64(gid), 10), "--rootfs", rootfs)
	return &specs.Hook{Path: shim[0], Args: append(args, links...)}
}

// devLinksMain runs the hook: args follow hookDevLinks.
func devLinksMain(args []string, stdin io.Reader) int {
	fl := flag.NewFlagSet(hookDevLinks, flag.ContinueOnError)
	uid := fl.Int("uid", -1, "host uid of instance root")
	gid := fl.Int("gid", -1, "host gid of instance root")
	rootfs := fl.String("rootfs", "", "the instance's root filesystem")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *uid < 0 || *gid < 0 || !filepath.IsAbs(*rootfs) {
		fmt.Fprintln(os.Stderr, "runc-shim hook: --uid, --gid and an absolute --rootfs are required")
		return 2
	}
	var st specs.State
	if err := json.NewDecoder(stdin).Decode(&st); err != nil || st.Pid <= 0 {
		fmt.Fprintln(os.Stderr, "runc-shim hook: reading the container state:", err)
		return 1
	}
	err := inProc(st.Pid, *uid, *gid, func() error {
		for _, name := range fl.Args() {
			if !runtime.ValidDeviceName(name) || !strings.HasPrefix(name, "/dev/") {
				return fmt.Errorf("invalid device name %q", name)
			}
			if err := makeLink(*rootfs, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runc-shim hook: container %s: %v\n", st.ID, err)
		return 1
	}
	return 0
}
