package blockstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Limits caps the I/O a cgroup does on one device (EBS's IOPS and
// throughput); a zero field leaves that dimension unlimited.
type Limits struct {
	ReadIOPS, WriteIOPS uint64
	ReadBPS, WriteBPS   uint64 // bytes per second
}

// Limit applies l to dev for the processes of the cgroup directory
// cgroupDir. In a cgroup v2 hierarchy that is io.max, which exists only
// where the parent enables the io controller (+io in its
// cgroup.subtree_control). A hybrid host whose io controller is the v1
// blkio hierarchy (this kind of host: the v2 mount has only hugetlb) takes
// the instance's blkio directory instead, and the same limits go to the
// blkio.throttle.* files. Either way the throttle sees direct I/O and reads;
// buffered writes are charged to the cgroup only under v2 with the memory
// controller enabled too (cgroup writeback), in v1 they escape it.
func Limit(cgroupDir string, dev Device, l Limits) error {
	devno := fmt.Sprintf("%d:%d", dev.Major, dev.Minor)
	if exists(filepath.Join(cgroupDir, "io.max")) {
		line := fmt.Sprintf("%s rbps=%s wbps=%s riops=%s wiops=%s", devno,
			maxOr(l.ReadBPS), maxOr(l.WriteBPS), maxOr(l.ReadIOPS), maxOr(l.WriteIOPS))
		return writeLimit(filepath.Join(cgroupDir, "io.max"), line)
	}
	if exists(filepath.Join(cgroupDir, "blkio.throttle.read_bps_device")) {
		// 0 removes a rule: what an unlimited field means here.
		for file, v := range map[string]uint64{
			"read_bps_device": l.ReadBPS, "write_bps_device": l.WriteBPS,
			"read_iops_device": l.ReadIOPS, "write_iops_device": l.WriteIOPS,
		} {
			if err := writeLimit(filepath.Join(cgroupDir, "blkio.throttle."+file), devno+" "+strconv.FormatUint(v, 10)); err != nil {
				return err
			}
		}
		return nil
	}
	if exists(filepath.Join(cgroupDir, "cgroup.controllers")) {
		return fmt.Errorf("I/O limits for %s: %s has no io.max: the io controller is not enabled in its parent's cgroup.subtree_control", dev, cgroupDir)
	}
	return fmt.Errorf("I/O limits for %s: %s is neither a cgroup v2 directory with io.max nor a v1 blkio directory", dev, cgroupDir)
}

func maxOr(v uint64) string {
	if v == 0 {
		return "max"
	}
	return strconv.FormatUint(v, 10)
}

func writeLimit(path, line string) error {
	// One write per line: the kernel parses each write(2) by itself.
	if err := os.WriteFile(path, []byte(line), 0); err != nil {
		return fmt.Errorf("writing %q to %s: %w", line, path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
