// Package runc runs nubo instances as system containers with runc.
//
// Each instance is a runc container in its own user, PID, mount, UTS, IPC,
// cgroup and network namespaces, supervised by a per-instance shim process
// (see ShimMain) that runs `runc run` in the foreground and records how PID 1
// ended. Neither the shim nor the container is a child that dies with nubo:
// a new nubo finds them again from the files under Config.Root (see
// bundle.go) and from runc's own state.
//
// Every method measures before it acts, so any of them can be repeated after
// a crash at any point.
//
// Wiring: nubo serves the shim as a hidden subcommand, dispatched before it
// does anything else, and names its own executable as the shim:
//
//	if len(os.Args) > 1 && os.Args[1] == "runc-shim" {
//		os.Exit(runc.ShimMain(os.Args[2:]))
//	}
//	exe, _ := os.Executable()
//	d, err := runc.New(runc.Config{
//		Root:   filepath.Join(dataDir, "runtime"),
//		Shim:   []string{exe, "runc-shim"},
//		Logger: logger,
//	})
//
// The shim binary is also the instances' OCI createRuntime hook (see
// delegate.go), which gives instance root its cgroups so that an init that
// manages cgroups, systemd, runs unprivileged; each run gets a pty from the
// host as its /dev/console, copied into the console log by the shim (see
// console.go); and Stop asks systemd to power off with the signal it wants
// (see shutdownSignal). systemd powers off and reboots with reboot(2), which
// in a PID namespace ends PID 1 as if by SIGINT (poweroff, halt: exit code
// 130) or SIGHUP (reboot: 129).
//
// Block devices (EBS volumes' loop devices) are given to instances as
// devices.go describes; an instance's mount(2) calls go to its shim through
// a seccomp filter, and the shim mounts the instance's own devices for it
// (seccomp.go).
//
// A Hibernatable instance is laid out for CRIU and its runs are split into
// Prepare (runc create) and Start (runc start); Checkpoint and Restore save
// and bring back its processes with runc checkpoint and restore (see
// hibernate.go).
//
// Host requirements: root, runc 1.1 (tested with cgroups v1 hybrid; hot-plug
// of devices needs the v1 devices controller), Linux 5.12 or later for
// idmapped mounts (tested on 6.18). Instance root runs as an unprivileged
// host UID (Spec.UIDBase) while runc sets up the root filesystem, so every
// directory above Spec.RootFS must be searchable by others (mode 0711 or
// wider), and the tree itself owned by the mapped range.
package runc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"nubo/internal/runtime"
)

// Config configures a Driver.
type Config struct {
	// Root is a directory nubo owns: it holds runc's state (Root/runc) and
	// the instances' bundles (Root/bundles/<id>).
	Root string
	// Runc is the runc binary; default "runc" from PATH.
	Runc string
	// Shim is the command that runs ShimMain, e.g. ["/usr/bin/nubo",
	// "runc-shim"]; the driver appends the shim's flags.
	Shim []string
	// CgroupParent is the cgroup below which instances get theirs
	// (CgroupParent/<id> in every v1 hierarchy); default "/nubo".
	CgroupParent string
	Logger       *slog.Logger
}

// Driver implements runtime.Driver with runc.
type Driver struct {
	cfg   Config
	log   *slog.Logger
	locks keyedMutex
	// noMountIntercept starts instances without the mount filter (tests
	// measure its cost with it).
	noMountIntercept bool
}

var _ runtime.Driver = (*Driver)(nil)

// New checks cfg and makes Root's directories.
func New(cfg Config) (*Driver, error) {
	if !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("runc driver: root %q is not an absolute path", cfg.Root)
	}
	if len(cfg.Shim) == 0 {
		return nil, errors.New("runc driver: no shim command")
	}
	// runc runs the shim as the instances' hooks, which need an absolute path.
	shim0, err := exec.LookPath(cfg.Shim[0])
	if err != nil {
		return nil, fmt.Errorf("runc driver: shim: %w", err)
	}
	if shim0, err = filepath.Abs(shim0); err != nil {
		return nil, fmt.Errorf("runc driver: shim: %w", err)
	}
	cfg.Shim = append([]string{shim0}, cfg.Shim[1:]...)
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	path, err := exec.LookPath(cfg.Runc)
	if err != nil {
		return nil, fmt.Errorf("runc driver: %w", err)
	}
	cfg.Runc = path
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "/nubo"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger}
	for _, dir := range []string{d.runcRoot(), d.bundlesDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("runc driver: %w", err)
		}
	}
	return d, nil
}

// keyedMutex serialises the changing methods per instance ID.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(id string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[id]
	if e == nil {
		e = &keyedEntry{}
		k.m[id] = e
	}
	e.refs++
	k.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, id)
		}
		k.mu.Unlock()
	}
}
