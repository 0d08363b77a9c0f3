package snapstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/mountinfo"
)

// ErrNoCgroup: the instance has no freezer cgroup here (it does not run).
var ErrNoCgroup = errors.New("instance has no freezer cgroup")

// Freezer makes a snapshot of a running instance's volumes crash-consistent
// with no device-mapper and no reflink: it freezes the instance's processes
// (the v1 freezer cgroup), flushes the filesystems the instance mounted
// from the volumes (syncfs: after it, the kernel's own writeback of them
// has nothing left to write) and waits for the devices' in-flight I/O. The
// volumes then hold still, at a point in time a crash could have left,
// until thawed; the caller reads them meanwhile.
type Freezer struct {
	Root    string        // the instances' freezer cgroups, e.g. /sys/fs/cgroup/freezer/nubo
	Timeout time.Duration // for the processes to freeze and the I/O to drain (default 5 s)
	Log     *slog.Logger
}

// Frozen is a freeze in effect.
type Frozen struct {
	f     *Freezer
	dir   string
	start time.Time
	once  sync.Once
	err   error
	took  time.Duration
}

// Freeze freezes instance id and quiesces devs (device numbers of the
// volumes' loop devices, as unix.Mkdev makes them). ErrNoCgroup when the
// instance has no freezer cgroup.
func (f *Freezer) Freeze(ctx context.Context, id string, devs []uint64) (*Frozen, error) {
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	dir := filepath.Join(f.Root, id)
	if _, err := os.Stat(filepath.Join(dir, "freezer.state")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", id, ErrNoCgroup)
	} else if err != nil {
		return nil, err
	}
	z := &Frozen{f: f, dir: dir, start: time.Now()}
	if err := writeState(dir, "FROZEN"); err != nil {
		return nil, err
	}
	deadline := z.start.Add(timeout)
	err := waitState(ctx, dir, "FROZEN", deadline)
	if err == nil {
		err = quiesce(dir, devs)
	}
	if err == nil {
		err = drain(ctx, devs, deadline)
	}
	if err != nil {
		z.Thaw()
		return nil, fmt.Errorf("freezing %s: %w", id, err)
	}
	return z, nil
}

// Thaw ends the freeze; later calls return the first one's result.
func (z *Frozen) Thaw() error {
	z.once.Do(func() {
		z.err = writeState(z.dir, "THAWED")
		z.took = time.Since(z.start)
		if z.f.Log != nil {
			z.f.Log.Info("instance thawed", "cgroup", z.dir, "frozenFor", z.took, "err", z.err)
		}
	})
	return z.err
}

// Took is how long the instance was frozen (once thawed).
func (z *Frozen) Took() time.Duration { return z.took }

// ThawAll thaws those of instances ids left frozen (by a process that died
// while a snapshot was being read): nubo freezes instances for nothing else.
func (f *Freezer) ThawAll(ids []string) error {
	var errs []error
	for _, id := range ids {
		dir := filepath.Join(f.Root, id)
		b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil || strings.TrimSpace(string(b)) == "THAWED" {
			continue
		}
		if f.Log != nil {
			f.Log.Warn("thawing an instance left frozen", "cgroup", dir)
		}
		errs = append(errs, writeState(dir, "THAWED"))
	}
	return errors.Join(errs...)
}

func writeState(dir, state string) error {
	if err := os.WriteFile(filepath.Join(dir, "freezer.state"), []byte(state), 0); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// waitState polls freezer.state: FREEZING turns FROZEN once every task of
// the cgroup (its children's included) stopped.
func waitState(ctx context.Context, dir, want string, deadline time.Time) error {
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
		if err != nil {
			return err
		}
		got := strings.TrimSpace(string(b))
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still %s", dir, got)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// quiesce flushes every filesystem that processes of the cgroup tree at dir
// have mounted from devs (or their partitions): one mount per superblock
// is enough, found through each mount namespace the processes use.
func quiesce(dir string, devs []uint64) error {
	want := withPartitions(devs)
	if len(want) == 0 {
		return nil
	}
	pids, err := cgroupPids(dir)
	if err != nil {
		return err
	}
	namespaces, synced := map[string]bool{}, map[uint64]bool{}
	for _, pid := range pids {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || namespaces[ns] {
			continue // exited, or its namespace is done
		}
		namespaces[ns] = true
		if err := syncMounts(pid, want, synced); err != nil {
			return err
		}
	}
	return nil
}

// syncMounts syncs the filesystems of devices want mounted in pid's mount
// namespace and not synced yet. The mount point is resolved inside the
// process's root (a frozen instance cannot move it meanwhile, and its
// symlinks cannot lead out), and is synced only if it is the device's.
func syncMounts(pid int, want map[uint64]bool, synced map[uint64]bool) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil // exited
	}
	defer f.Close()
	root, err := os.Open(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil {
		return nil
	}
	defer root.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		dev, ok := parseDev(fields[2])
		if !ok || !want[dev] || synced[dev] {
			continue
		}
		fd, err := unix.Openat2(int(root.Fd()), mountinfo.Unescape(fields[4]), &unix.OpenHow{
			Flags: unix.O_RDONLY | unix.O_CLOEXEC | unix.O_DIRECTORY, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			continue // gone, or not reachable from its root
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil && st.Dev == dev {
			err = unix.Syncfs(fd)
			if err != nil {
				unix.Close(fd)
				return fmt.Errorf("syncfs of %s in process %d: %w", fields[4], pid, err)
			}
			synced[dev] = true
		}
		unix.Close(fd)
	}
	return sc.Err()
}

// drain waits until the devices have no I/O in flight.
func drain(ctx context.Context, devs []uint64, deadline time.Time) error {
	for _, dev := range devs {
		path := fmt.Sprintf("/sys/dev/block/%d:%d/inflight", unix.Major(dev), unix.Minor(dev))
		for wait := 100 * time.Microsecond; ; wait = min(2*wait, 10*time.Millisecond) {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if f := strings.Fields(string(b)); len(f) == 2 && f[0] == "0" && f[1] == "0" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("device %d:%d still has I/O in flight", unix.Major(dev), unix.Minor(dev))
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// cgroupPids lists the processes of the cgroup at dir and its descendants.
func cgroupPids(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil // removed meanwhile
		}
		for _, l := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(l); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// withPartitions returns devs and the partitions of each (sysfs lists them
// under the disk: /sys/dev/block/M:m/<name>p1/dev).
func withPartitions(devs []uint64) map[uint64]bool {
	out := map[uint64]bool{}
	for _, d := range devs {
		out[d] = true
		sys := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(d), unix.Minor(d))
		parts, _ := filepath.Glob(sys + "/*/partition")
		for _, p := range parts {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "dev"))
			if err != nil {
				continue
			}
			if dev, ok := parseDev(strings.TrimSpace(string(b))); ok {
				out[dev] = true
			}
		}
	}
	return out
}

// parseDev reads "major:minor".
func parseDev(s string) (uint64, bool) {
	maj, min, ok := strings.Cut(s, ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, false
	}
	return unix.Mkdev(uint32(ma), uint32(mi)), true
}
