package runc

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"nubo/internal/mountinfo"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cgroup delegation.
//
// An init that manages cgroups itself (systemd) needs to make sub-cgroups
// below its own and move processes between them. runc makes the instance's
// cgroups owned by host root, which instance root (an unmapped host uid) may
// not write. runc runs the shim as an OCI createRuntime hook, after it has
// made the cgroups and set their limits and before PID 1 runs: the hook
// hands the instance's cgroup directory in every hierarchy to instance root,
// together with the files that delegation needs (cgroup.procs, tasks, and in
// the v2 hierarchy cgroup.threads and cgroup.subtree_control) — the files
// cgroup v2's delegation model names. The limit files (memory.limit_in_bytes,
// cpu.cfs_quota_us, pids.max, …) stay owned by host root, so the instance can
// neither raise its limits nor escape them: everything it makes is below the
// limited cgroup, and every controller here is hierarchical.
//
// It is done for every instance, whatever its init: it costs one exec of the
// shim binary per start (a few ms), gives a non-systemd init the same
// ability (a container engine inside an instance needs it too), and needs no
// guess at what PID 1 will be.

// hookDelegate is the hidden mode of the shim binary that runc runs as the
// createRuntime hook: Config.Shim + [hookCommand, hookDelegate, --uid N --gid N].
const (
	hookCommand  = "hook"
	hookDelegate = "delegate-cgroup"
)

// delegateFiles are the files of a cgroup directory its delegatee must own.
var delegateFiles = []string{"cgroup.procs", "tasks", "cgroup.threads", "cgroup.subtree_control"}

// delegateHook is the OCI hook that runs the shim binary as the delegation
// hook for an instance whose root is uid:gid on the host.
func delegateHook(shim []string, uid, gid uint32) specs.Hook {
	args := append(slices.Clone(shim), hookCommand, hookDelegate,
		"--uid", strconv.FormatUint(uint64(uid), 10), "--gid", strconv.FormatUint(uint64(gid), 10))
	return specs.Hook{Path: shim[0], Args: args}
}

// hookMain runs a hook mode of the shim binary: args are what follows
// hookCommand. runc passes the container's state on stdin and reports what
// the hook writes to stderr if it fails.
func hookMain(args []string, stdin io.Reader) int {
	if len(args) > 0 && args[0] == hookDevLinks {
		return devLinksMain(args[1:], stdin)
	}
	if len(args) == 0 || args[0] != hookDelegate {
		fmt.Fprintf(os.Stderr, "runc-shim hook: unknown hook %q\n", args)
		return 2
	}
	fl := flag.NewFlagSet(hookDelegate, flag.ContinueOnError)
	uid := fl.Int("uid", -1, "host uid of instance root")
	gid := fl.Int("gid", -1, "host gid of instance root")
	if err := fl.Parse(args[1:]); err != nil {
		return 2
	}
	if *uid < 0 || *gid < 0 {
		fmt.Fprintln(os.Stderr, "runc-shim hook: --uid and --gid are required")
		return 2
	}
	var st specs.State
	if err := json.NewDecoder(stdin).Decode(&st); err != nil {
		fmt.Fprintln(os.Stderr, "runc-shim hook: reading the container state:", err)
		return 1
	}
	if st.Pid <= 0 {
		fmt.Fprintf(os.Stderr, "runc-shim hook: container %s has no pid\n", st.ID)
		return 1
	}
	if err := delegateCgroups(st.Pid, *uid, *gid); err != nil {
		fmt.Fprintf(os.Stderr, "runc-shim hook: container %s: %v\n", st.ID, err)
		return 1
	}
	return 0
}

// delegateCgroups gives pid's cgroup in every hierarchy to uid:gid.
func delegateCgroups(pid, uid, gid int) error {
	dirs, err := cgroupsOf(pid)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return fmt.Errorf("no cgroup of process %d found", pid)
	}
	for _, dir := range dirs {
		if err := delegate(dir, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// delegate chowns dir and its delegation files; the files a hierarchy lacks
// (tasks in v2, cgroup.threads in v1) are skipped.
func delegate(dir string, uid, gid int) error {
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	for _, f := range delegateFiles {
		if err := os.Lchown(filepath.Join(dir, f), uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// cgroupsOf lists the directories of pid's cgroups in every hierarchy
// mounted in this mount namespace, from /proc/<pid>/cgroup and
// /proc/self/mountinfo. A cgroup directory that is the hierarchy's root (a
// process that was never put in a cgroup of its own) is an error: it
// must never be handed over.
func cgroupsOf(pid int) ([]string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		key := parts[1] // "" for the v2 hierarchy
		path := parts[2]
		m, ok := mounts[hierarchyKey(key)]
		if !ok {
			continue // a hierarchy not mounted here
		}
		rel, ok := strings.CutPrefix(path, m.root)
		if !ok {
			return nil, fmt.Errorf("cgroup %s of hierarchy %q is outside its mount (root %s)", path, key, m.root)
		}
		if strings.Trim(rel, "/") == "" {
			return nil, fmt.Errorf("process %d is in the root cgroup of hierarchy %q", pid, key)
		}
		dirs = append(dirs, filepath.Join(m.point, rel))
	}
	return dirs, sc.Err()
}

type cgroupMount struct{ point, root string }

// hierarchyKey names a hierarchy by its sorted controller list (v1, named
// hierarchies as name=…), or "" for v2.
func hierarchyKey(list string) string {
	if list == "" {
		return ""
	}
	c := strings.Split(list, ",")
	slices.Sort(c)
	return strings.Join(c, ",")
}

// cgroupMounts maps each mounted cgroup hierarchy to one of its mount
// points, from /proc/self/mountinfo.
func cgroupMounts() (map[string]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]cgroupMount)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint options [optional…] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		var key string
		switch qf[0] {
		case "cgroup2":
			key = ""
		case "cgroup":
			var ctrl []string
			for _, o := range strings.Split(qf[2], ",") {
				if isV1Controller(o) || strings.HasPrefix(o, "name=") {
					ctrl = append(ctrl, o)
				}
			}
			key = hierarchyKey(strings.Join(ctrl, ","))
		default:
			continue
		}
		if _, seen := out[key]; !seen {
			out[key] = cgroupMount{point: mountinfo.Unescape(pf[4]), root: mountinfo.Unescape(pf[3])}
		}
	}
	return out, sc.Err()
}

// isV1Controller tells a controller from the other options of a cgroup v1
// mount (rw, relatime, xattr, clone_children, release_agent=…, …).
func isV1Controller(o string) bool {
	switch o {
	case "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
		"net_cls,net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc", "debug":
		return true
	}
	return false
}
