package runc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

// The v1 devices controller decides which device nodes an instance's
// processes may open. runc writes the rules of the OCI config when the
// instance starts; a device attached later is allowed here.
//
// A v1 devices cgroup copies its parent's rules when it is made and never
// sees the parent's later allows, and systemd inside an instance makes
// cgroups below the instance's: an allow is written to every cgroup of the
// instance, parents first (a child may allow only what its parent does).

// devicesCgroup is the instance's cgroup in the v1 devices hierarchy.
func (d *Driver) devicesCgroup(id string) string {
	return filepath.Join(cgroupRoot, "devices", cgroupPath(d.cfg.CgroupParent, id))
}

// deviceRule is the devices-cgroup rule for full access to a block device.
func deviceRule(dev runtime.BlockDevice) string {
	return fmt.Sprintf("b %d:%d rwm", dev.Major, dev.Minor)
}

// allowDevice lets the processes of the cgroup at dir, and of every cgroup
// below it, open dev.
func allowDevice(dir string, dev runtime.BlockDevice) error {
	return writeTree(dir, "devices.allow", deviceRule(dev))
}

// denyDevice takes dev away from the cgroup at dir and every cgroup below
// it (open files stay open: the controller checks at open).
func denyDevice(dir string, dev runtime.BlockDevice) error {
	return writeTree(dir, "devices.deny", deviceRule(dev))
}

// I/O limits (BlockDevice.IOPS and BPS) are the v1 blkio controller's
// throttle rules for the device, which runc writes at start from the OCI
// config and limitDevice writes later. v1 throttling is not hierarchical: a
// rule holds only for the processes of the cgroup that has it, so it is
// written to every cgroup of the instance. systemd makes no blkio cgroups
// of its own unless a unit asks for I/O accounting or limits; the processes
// of one made after the rules are written escape them. Only direct I/O and
// reads are throttled: v1 charges buffered writes to no cgroup.

// blkioCgroup is the instance's cgroup in the v1 blkio hierarchy.
func (d *Driver) blkioCgroup(id string) string {
	return filepath.Join(cgroupRoot, "blkio", cgroupPath(d.cfg.CgroupParent, id))
}

// throttleFiles are the blkio rules of a device's limits, by file.
func throttleFiles(dev runtime.BlockDevice) map[string]uint64 {
	return map[string]uint64{
		"blkio.throttle.read_bps_device": dev.BPS, "blkio.throttle.write_bps_device": dev.BPS,
		"blkio.throttle.read_iops_device": dev.IOPS, "blkio.throttle.write_iops_device": dev.IOPS,
	}
}

// limitDevice sets dev's limits in the cgroup at dir and every cgroup
// below it; a zero limit removes the rule.
func limitDevice(dir string, dev runtime.BlockDevice) error {
	for file, v := range throttleFiles(dev) {
		if err := writeTree(dir, file, fmt.Sprintf("%d:%d %d", dev.Major, dev.Minor, v)); err != nil {
			return err
		}
	}
	return nil
}

// writeTree writes rule to file in dir and every directory below it, top
// down. A cgroup removed meanwhile is skipped.
func writeTree(dir, file, rule string) error {
	if !exists(dir) {
		return fmt.Errorf("no cgroup %s: hot-plug needs the cgroup v1 devices and blkio controllers", dir)
	}
	return filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		err = os.WriteFile(filepath.Join(path, file), []byte(rule), 0)
		if err != nil && path != dir && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("writing %q to %s: %w", rule, filepath.Join(path, file), err)
		}
		return nil
	})
}

// cgroupProcs lists the processes of the cgroup at dir and of every cgroup
// below it.
func cgroupProcs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			if path != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}
