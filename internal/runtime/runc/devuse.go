package runc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nubo/internal/mountinfo"
	"nubo/internal/runtime"
)

// deviceUse is what holds a block device inside an instance: filesystems
// on it mounted in any of its mount namespaces (systemd gives services
// namespaces of their own), and processes that have the device open.
type deviceUse struct {
	mounts []devMount
	openBy []int
}

// devMount is a mount of the device, seen by process pid at path.
type devMount struct {
	pid  int
	path string
}

func (u deviceUse) busy() bool { return len(u.mounts) > 0 || len(u.openBy) > 0 }

func (u deviceUse) String() string {
	var parts []string
	for _, m := range u.mounts {
		parts = append(parts, fmt.Sprintf("mounted at %s (seen by process %d)", m.path, m.pid))
	}
	if len(u.openBy) > 0 {
		parts = append(parts, fmt.Sprintf("open in processes %v", u.openBy))
	}
	return strings.Join(parts, ", ")
}

// scanDeviceUse looks through procs (host PIDs) for uses of dev. Each mount
// namespace is read once; processes that end meanwhile are skipped.
func scanDeviceUse(procs []int, dev runtime.BlockDevice) deviceUse {
	var u deviceUse
	majMin := fmt.Sprintf("%d:%d", dev.Major, dev.Minor)
	rdev := unix.Mkdev(dev.Major, dev.Minor)
	seen := make(map[uint64]bool)
	for _, pid := range procs {
		dir := "/proc/" + strconv.Itoa(pid)
		var st unix.Stat_t
		if err := unix.Stat(dir+"/ns/mnt", &st); err == nil && !seen[st.Ino] {
			seen[st.Ino] = true
			for _, p := range mountsOf(pid, majMin) {
				u.mounts = append(u.mounts, devMount{pid: pid, path: p})
			}
		}
		if holdsOpen(dir, rdev) {
			u.openBy = append(u.openBy, pid)
		}
	}
	return u
}

// mountsOf lists the mount points, as pid sees them, of the filesystems on
// device majMin in pid's mount namespace, deepest first (the order to
// unmount them in).
func mountsOf(pid int, majMin string) []string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent maj:min root mountpoint options …
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[2] == majMin {
			paths = append(paths, mountinfo.Unescape(fields[4]))
		}
	}
	slices.SortFunc(paths, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return paths
}

// holdsOpen reports whether the process at /proc dir has the block device
// rdev open. Only descriptors that name a path are looked at (sockets,
// pipes and anonymous inodes cannot be the device).
func holdsOpen(dir string, rdev uint64) bool {
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return false
	}
	for _, e := range fds {
		link := filepath.Join(dir, "fd", e.Name())
		target, err := os.Readlink(link)
		if err != nil || !strings.HasPrefix(target, "/") {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(link, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev {
			return true
		}
	}
	return false
}
