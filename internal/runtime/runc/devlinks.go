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

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

// The names of devices in an instance's /dev.
//
// The nodes themselves are in the bundle's dev/ directory, which every
// instance has bound at nodeDir: a node made or removed there on the host
// appears or goes inside at once. /dev/sdf is a symlink to its node (as on
// EC2, where /dev/sdX are udev's links), and /dev/xvdf one to /dev/sdf.
// The device's name is no mount point: a node bound at /dev/sdf itself
// would be what `umount /dev/sdf` (or AWS's `umount -d /dev/sdh`) took
// away, leaving the filesystem mounted.

// nodeDir is where the instance sees its device nodes.
const nodeDir = "/dev/.nubo"

// deviceLinks are the links that name dev inside: link path → target.
func deviceLinks(name string) [][2]string {
	links := [][2]string{{name, filepath.Base(nodeDir) + "/" + filepath.Base(name)}}
	if xvd, ok := xvdLink(name); ok {
		links = append(links, [2]string{xvd, filepath.Base(name)})
	}
	return links
}

// makeLinks makes the links of the device name below root (as the calling
// thread sees paths). A link that is there already is kept; anything else
// at its place is an error.
func makeLinks(root, name string) error {
	for _, l := range deviceLinks(name) {
		path := filepath.Join(root, l[0])
		err := unix.Symlink(l[1], path)
		if errors.Is(err, unix.EEXIST) {
			if target, rerr := os.Readlink(path); rerr == nil && target == l[1] {
				continue
			}
			return fmt.Errorf("%s exists in the instance and is not the device's link", l[0])
		}
		if err != nil {
			return fmt.Errorf("linking %s: %w", l[0], err)
		}
	}
	return nil
}

// linkDevice makes dev's links in the running instance whose PID 1 is pid,
// as instance root (uid:gid on the host).
func linkDevice(pid int, dev runtime.BlockDevice, uid, gid int) error {
	return inProc(pid, uid, gid, func() error { return makeLinks("/", dev.Name) })
}

// unlinkDevice removes the links of dev from the running instance whose
// PID 1 is pid: those that are still the device's.
func unlinkDevice(pid int, dev runtime.BlockDevice) error {
	return inProc(pid, 0, 0, func() error {
		for _, l := range slices.Backward(deviceLinks(dev.Name)) {
			if target, err := os.Readlink(l[0]); err != nil || target != l[1] {
				continue
			}
			if err := unix.Unlink(l[0]); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
		return nil
	})
}

// The links of devices present from boot are made by an OCI createRuntime
// hook (the shim binary again, like delegate.go's), which runs once runc
// has mounted the instance's /dev and bound nodeDir, before PID 1 runs:
//
//	Config.Shim + hook dev-links --uid N --gid N --rootfs DIR NAME…
//
// It runs in the host's namespaces; PID 1-to-be is in the instance's
// mount namespace, where the root filesystem is still at DIR.
const hookDevLinks = "dev-links"

// devLinksHook is the hook that links names (e.g. /dev/sdf) in an
// instance whose root is uid:gid on the host; nil if there are none.
func devLinksHook(shim []string, uid, gid uint32, rootfs string, names []string) *specs.Hook {
	if len(names) == 0 {
		return nil
	}
	args := append(slices.Clone(shim), hookCommand, hookDevLinks,
		"--uid", strconv.FormatUint(uint64(uid), 10), "--gid", strconv.FormatUint(uint64(gid), 10), "--rootfs", rootfs)
	return &specs.Hook{Path: shim[0], Args: append(args, names...)}
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
			if !runtime.ValidDeviceName(name) {
				return fmt.Errorf("invalid device name %q", name)
			}
			if err := makeLinks(*rootfs, name); err != nil {
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
