package runc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

// Block devices (EBS volumes) inside instances.
//
// An instance cannot make device nodes, and one it could make would sit on
// a filesystem mounted in its user namespace, where the kernel opens no
// device. So the driver makes, for each device, a node in the bundle's
// dev/ directory (owned by instance root, mode 0660), which every instance
// has bound at /dev/.nubo, links the device's name to it (/dev/sdf, and
// /dev/xvdf as Xen-era Linux named it: see devlinks.go), and the devices
// cgroup lets the instance open it. A device present at Start gets an OCI
// cgroup rule (its links are made by a createRuntime hook); one attached
// while the instance runs is allowed in its devices cgroups and linked in
// PID 1's mount namespace. Mounting a filesystem on it is the shim's work
// (see seccomp.go).
//
// devices.json in the bundle records the devices the instance has, and is
// the truth for everything: the next Start allows and links them, the
// shim mounts only them, and a new Driver on the same Root finds them.
// Create sets it to Spec.Devices; AttachDevice and DetachDevice change it.

// devicesFile is the record; devDir holds the host nodes (see bundle.go).
const (
	devicesFile = "devices.json"
	devDir      = "dev"
)

// readDevices reads a bundle's device record; none if absent.
func readDevices(bundle string) ([]runtime.BlockDevice, error) {
	var devs []runtime.BlockDevice
	_, err := readJSON(filepath.Join(bundle, devicesFile), &devs)
	return devs, err
}

func (d *Driver) devices(id string) ([]runtime.BlockDevice, error) {
	return readDevices(d.bundle(id))
}

func (d *Driver) writeDevices(id string, devs []runtime.BlockDevice) error {
	if devs == nil {
		devs = []runtime.BlockDevice{}
	}
	return writeJSON(d.file(id, devicesFile), devs)
}

// deviceNode is the host node of the instance's device name.
func (d *Driver) deviceNode(id, name string) string {
	return filepath.Join(d.bundle(id), devDir, filepath.Base(name))
}

// makeDevDir makes the bundle's node directory, which instances see at
// nodeDir: root's, and only searchable and readable by instance root.
func makeDevDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// validDevices checks a set of devices for an instance: each valid, and no
// name or device number twice.
func validDevices(devs []runtime.BlockDevice) error {
	names, nums := map[string]bool{}, map[uint64]bool{}
	for _, dev := range devs {
		if err := dev.Validate(); err != nil {
			return err
		}
		num := unix.Mkdev(dev.Major, dev.Minor)
		if names[dev.Name] || nums[num] {
			return fmt.Errorf("device %s (%d:%d) given twice", dev.Name, dev.Major, dev.Minor)
		}
		names[dev.Name], nums[num] = true, true
	}
	return nil
}

// xvdLink is the other name of a /dev/sdX device, /dev/xvdX; ok is false
// for other names.
func xvdLink(name string) (link string, ok bool) {
	rest, ok := strings.CutPrefix(name, "/dev/sd")
	if !ok || rest == "" {
		return "", false
	}
	return "/dev/xvd" + rest, true
}

// ensureNode makes path a block node of dev owned by uid:gid, mode 0660,
// replacing whatever else is there.
func ensureNode(path string, dev runtime.BlockDevice, uid, gid uint32) error {
	rdev := unix.Mkdev(dev.Major, dev.Minor)
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != rdev) {
		if err := os.Remove(path); err != nil {
			return err
		}
		err = unix.ENOENT
	}
	if errors.Is(err, unix.ENOENT) {
		if err := makeDevDir(filepath.Dir(path)); err != nil {
			return err
		}
		if err := unix.Mknod(path, unix.S_IFBLK|0o660, int(rdev)); err != nil {
			return fmt.Errorf("making node %s: %w", path, err)
		}
	} else if err != nil {
		return err
	}
	if err := os.Lchown(path, int(uid), int(gid)); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return err
	}
	// The instance opens the node through a bind mount, which keeps the
	// flags of the mount the directory is on: nodev would make it useless.
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err == nil && sfs.Flags&unix.ST_NODEV != 0 {
		return fmt.Errorf("node %s is on a nodev mount: the instance could not open it", path)
	}
	return nil
}

// checkHostDevice checks that dev's host path is the block device it says.
func checkHostDevice(dev runtime.BlockDevice) error {
	var st unix.Stat_t
	if err := unix.Stat(dev.HostPath, &st); err != nil {
		return fmt.Errorf("host device: %w", &os.PathError{Op: "stat", Path: dev.HostPath, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(dev.Major, dev.Minor) {
		return fmt.Errorf("host device %s is not block device %d:%d", dev.HostPath, dev.Major, dev.Minor)
	}
	return nil
}

// AttachDevice gives the instance dev: recorded for its next Start, and at
// once if it runs. Attaching a device the instance has is a no-op (that
// repairs what a crash may have left half done).
func (d *Driver) AttachDevice(ctx context.Context, id string, dev runtime.BlockDevice) error {
	if err := d.attachDevice(ctx, id, dev); err != nil {
		return fmt.Errorf("attaching %s to %s: %w", dev.Name, id, err)
	}
	return nil
}

func (d *Driver) attachDevice(ctx context.Context, id string, dev runtime.BlockDevice) error {
	begin := time.Now()
	if err := dev.Validate(); err != nil {
		return err
	}
	if !runtime.ValidID(id) {
		return runtime.ErrNotFound
	}
	if err := checkHostDevice(dev); err != nil {
		return err
	}
	defer d.locks.lock(id)()
	spec, err := d.specOf(id)
	if err != nil {
		return err
	}
	devs, err := d.devices(id)
	if err != nil {
		return err
	}
	added, changed := true, false
	for i, have := range devs {
		same := have.Major == dev.Major && have.Minor == dev.Minor
		switch {
		case have.Name == dev.Name && same:
			added = false
			if have != dev { // new limits (a modified volume), or host path
				changed = true
				devs[i] = dev
			}
		case have.Name == dev.Name:
			return fmt.Errorf("the instance has another device (%d:%d) at %s", have.Major, have.Minor, have.Name)
		case same:
			return fmt.Errorf("the instance has this device already, at %s", have.Name)
		}
	}
	node := d.deviceNode(id, dev.Name)
	if err := ensureNode(node, dev, spec.UIDBase, spec.GIDBase); err != nil {
		return err
	}
	switch {
	case added:
		if err := d.writeDevices(id, append(devs, dev)); err != nil {
			return err
		}
	case changed:
		if err := d.writeDevices(id, devs); err != nil {
			return err
		}
	}
	o, err := d.observeSettled(ctx, id)
	if err != nil {
		return err
	}
	// A prepared instance (Hibernatable, see hibernate.go) has its PID 1,
	// root and cgroups: it gets the device at once, as a running one.
	if !o.running() && !o.prepared() {
		d.log.Info("device recorded for the next start", "instance", id, "device", dev.Name, "host", dev.HostPath)
		return nil
	}
	if err := d.plugDevice(id, o.runc.Pid, spec, dev); err != nil {
		if added { // leave nothing of a device the caller was told it did not get
			if uerr := d.unplugDevice(id, o.runc.Pid, dev, true); uerr != nil {
				d.log.Warn("undoing a failed attach", "instance", id, "device", dev.Name, "err", uerr)
			}
			if werr := d.writeDevices(id, devs); werr == nil {
				removeIfExists(node)
			}
		}
		return err
	}
	d.log.Info("device attached", "instance", id, "device", dev.Name, "host", dev.HostPath, "took", time.Since(begin))
	return nil
}

// plugDevice gives a running instance (PID 1 pid) dev, whose node is made,
// with its I/O limits.
func (d *Driver) plugDevice(id string, pid int, spec runtime.Spec, dev runtime.BlockDevice) error {
	if err := allowDevice(d.devicesCgroup(id), dev); err != nil {
		return err
	}
	if err := limitDevice(d.blkioCgroup(id), dev); err != nil {
		return err
	}
	return linkDevice(pid, dev, int(spec.UIDBase), int(spec.GIDBase))
}

// DetachDevice takes the device named name away from the instance (see
// runtime.Driver). Once it returns, nothing of the instance holds the
// device (and the agent may detach its loop device) except, after a forced
// detach, a filesystem lazily unmounted while files on it are still open,
// or a process that still has the device itself open: the kernel lets both
// live until they close it.
func (d *Driver) DetachDevice(ctx context.Context, id, name string, force bool) error {
	if err := d.detachDevice(ctx, id, name, force); err != nil {
		return fmt.Errorf("detaching %s from %s: %w", name, id, err)
	}
	return nil
}

func (d *Driver) detachDevice(ctx context.Context, id, name string, force bool) error {
	if !runtime.ValidID(id) || !runtime.ValidDeviceName(name) {
		return nil // no instance can have it
	}
	defer d.locks.lock(id)()
	if _, err := d.specOf(id); errors.Is(err, runtime.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	devs, err := d.devices(id)
	if err != nil {
		return err
	}
	node := d.deviceNode(id, name)
	i := slices.IndexFunc(devs, func(dev runtime.BlockDevice) bool { return dev.Name == name })
	var dev runtime.BlockDevice
	if i >= 0 {
		// Out of the record first: the shim mounts it no more.
		dev = devs[i]
		if err := d.writeDevices(id, slices.Delete(slices.Clone(devs), i, i+1)); err != nil {
			return err
		}
	} else {
		// A detach cut short leaves the host node, removed last: finish it.
		var st unix.Stat_t
		if err := unix.Lstat(node, &st); errors.Is(err, unix.ENOENT) {
			return nil
		} else if err != nil {
			return err
		}
		dev = runtime.BlockDevice{Name: name, Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
	}
	o, err := d.observeSettled(ctx, id)
	if err == nil && (o.running() || o.prepared()) {
		err = d.unplugDevice(id, o.runc.Pid, dev, force)
	}
	if err != nil {
		if i >= 0 {
			if werr := d.writeDevices(id, devs); werr != nil {
				d.log.Error("restoring the device record", "instance", id, "device", name, "err", werr)
			}
		}
		return err
	}
	if err := removeIfExists(node); err != nil {
		return err
	}
	d.log.Info("device detached", "instance", id, "device", name, "forced", force)
	return nil
}

// unplugDevice takes dev away from a running instance (PID 1 pid):
// ErrDeviceBusy if it is in use there, unless force, which unmounts its
// filesystems lazily first; then the devices cgroup denies it and its
// links leave /dev (its node goes with the host's, after this).
func (d *Driver) unplugDevice(id string, pid int, dev runtime.BlockDevice, force bool) error {
	procs, err := cgroupProcs(d.devicesCgroup(id))
	if err != nil || len(procs) == 0 {
		procs = []int{pid}
	}
	use := scanDeviceUse(procs, dev)
	if use.busy() && !force {
		return fmt.Errorf("%w: %s", runtime.ErrDeviceBusy, use)
	}
	// Unmounting in one namespace may unmount copies elsewhere (mount
	// propagation): look again until nothing is left, a few rounds at most.
	for round := 0; round < 5 && len(use.mounts) > 0; round++ {
		for _, m := range use.mounts {
			if err := detachMount(m.pid, m.path); err != nil {
				return fmt.Errorf("unmounting %s (process %d's view): %w", m.path, m.pid, err)
			}
			d.log.Warn("filesystem unmounted lazily for a forced detach", "instance", id, "device", dev.Name, "path", m.path, "pid", m.pid)
		}
		use = scanDeviceUse(procs, dev)
	}
	if len(use.mounts) > 0 {
		return fmt.Errorf("still mounted after a forced unmount: %s", use)
	}
	if len(use.openBy) > 0 {
		d.log.Warn("device still open inside the instance after a forced detach", "instance", id, "device", dev.Name, "pids", use.openBy)
	}
	if err := denyDevice(d.devicesCgroup(id), dev); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Its limits go too: the loop device may be another volume's next.
	unlimited := dev
	unlimited.IOPS, unlimited.BPS = 0, 0
	if err := limitDevice(d.blkioCgroup(id), unlimited); err != nil {
		return err
	}
	return unlinkDevice(pid, dev)
}
