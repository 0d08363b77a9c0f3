package runc

import (
	"hash/fnv"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"nubo/internal/runtime"
)

// cpuPeriod is the CFS period (µs); the quota is VCPUs periods.
const cpuPeriod = 100000

// capabilities of an instance's root. They act only inside the instance's
// user namespace, so they cover what an init, sshd, a package manager and a
// debugger need without giving power over the host. CAP_SYS_BOOT lets
// reboot(2) inside end PID 1 (the kernel signals the PID namespace's init).
// Never CAP_SYS_RESOURCE: it is not in the host's bounding set, and runc
// fails with EPERM when asked for it.
var capabilities = []string{
	"CAP_AUDIT_WRITE",
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_IPC_LOCK",
	"CAP_KILL",
	"CAP_MKNOD",
	"CAP_NET_ADMIN",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_RAW",
	"CAP_SETFCAP",
	"CAP_SETGID",
	"CAP_SETPCAP",
	"CAP_SETUID",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_CHROOT",
	"CAP_SYS_NICE",
	"CAP_SYS_PTRACE",
}

// maskedPaths and readonlyPaths are Docker's defaults.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
		"/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap",
		"/sys/firmware",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// cpuSet gives an instance min(vcpus, ncpu) of the host's CPUs, so that
// nproc inside shows its vCPUs (the quota alone would leave it all the host's).
// Instances start at different CPUs, picked by ID, to spread the load.
func cpuSet(id string, vcpus, ncpu int) string {
	n := min(vcpus, ncpu)
	h := fnv.New32a()
	h.Write([]byte(id))
	first := int(h.Sum32() % uint32(ncpu))
	cpus := make([]string, n)
	for i := range cpus {
		cpus[i] = strconv.Itoa((first + i) % ncpu)
	}
	sort.Slice(cpus, func(i, j int) bool { a, _ := strconv.Atoi(cpus[i]); b, _ := strconv.Atoi(cpus[j]); return a < b })
	return strings.Join(cpus, ",")
}

// ociOptions is what a run's OCI config takes besides the spec.
type ociOptions struct {
	CgroupParent string   // e.g. "/nubo"
	Shim         []string // the driver's Config.Shim, run as the hooks
	Console      string   // host path of the pty slave bound at /dev/console; "": none
	// DeviceDir is the host directory of the instance's device nodes,
	// bound at nodeDir; Devices are the block devices it has from boot
	// (see devices.go).
	DeviceDir string
	Devices   []runtime.BlockDevice
	// Listener is the shim's seccomp listener socket, to which mount(2) is
	// passed (see seccomp.go); "": no mount interception.
	Listener string
	// Sysfs is a host directory holding a sysfs mounted from inside the
	// instance's network namespace (see netns.go), bound read-only at /sys
	// of an instance that joins a namespace made outside it.
	Sysfs string
}

// ociSpec is the runc config.json of one run of an instance.
func ociSpec(s runtime.Spec, o ociOptions) *specs.Spec {
	caps := append([]string(nil), capabilities...)
	memory := s.MemoryMiB << 20
	quota := int64(s.VCPUs) * cpuPeriod
	period := uint64(cpuPeriod)
	shares := uint64(1024 * s.VCPUs)
	netns := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS}
	spec := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: s.RootFS},
		Hostname: s.Hostname,
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: append([]string(nil), s.Init...),
			Env:  append([]string(nil), s.Env...),
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
		},
		Mounts: mounts(o.Sysfs),
		Hooks: &specs.Hooks{
			CreateRuntime: []specs.Hook{delegateHook(o.Shim, s.UIDBase, s.GIDBase)},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.UserNamespace}, {Type: specs.PIDNamespace},
				{Type: specs.MountNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.CgroupNamespace},
				netns,
			},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: s.UIDBase, Size: s.IDCount}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: s.GIDBase, Size: s.IDCount}},
			CgroupsPath: cgroupPath(o.CgroupParent, s.ID),
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memory, Swap: &memory},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares, Cpus: cpuSet(s.ID, s.VCPUs, goruntime.NumCPU())},
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	if o.Console != "" {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/dev/console", Type: "bind", Source: o.Console,
			Options: []string{"bind", "nosuid", "noexec"}})
	}
	if s.PidsLimit > 0 {
		spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: s.PidsLimit}
	}
	if o.DeviceDir != "" {
		// No nodev: the nodes are devices the instance is to open.
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: nodeDir, Type: "bind", Source: o.DeviceDir,
			Options: []string{"bind", "nosuid", "noexec"}})
	}
	var names []string
	for _, dev := range o.Devices {
		major, minor := int64(dev.Major), int64(dev.Minor)
		spec.Linux.Resources.Devices = append(spec.Linux.Resources.Devices,
			specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: &major, Minor: &minor, Access: "rwm"})
		throttle(spec.Linux.Resources, dev)
		names = append(names, dev.Name)
	}
	if h := devLinksHook(o.Shim, s.UIDBase, s.GIDBase, s.RootFS, names); h != nil {
		spec.Hooks.CreateRuntime = append(spec.Hooks.CreateRuntime, *h)
	}
	spec.Linux.Seccomp = instanceSeccomp(o.Listener)
	return spec
}

// mounts are the standard mounts of a system container, all of which work
// in a user namespace. sysfs can be mounted only by the owner of the
// network namespace, so an instance that joins a namespace made outside
// gets sysfs, a sysfs the runtime mounted for that namespace, bound
// read-only instead: its /sys/class/net shows the instance's own
// interfaces, and those attached later (ENIs) appear there.
func mounts(sysfs string) []specs.Mount {
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs",
		Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	if sysfs != "" {
		sys = specs.Mount{Destination: "/sys", Type: "none", Source: sysfs,
			Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc",
			Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
			Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue",
			Options: []string{"nosuid", "noexec", "nodev"}},
		sys,
		// Writable: an init that manages cgroups (systemd) makes its own
		// below the instance's. It can write only what the delegation hook
		// gave instance root; the limits stay the host's (see delegate.go).
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime"}},
		{Destination: "/run", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"nosuid", "nodev", "mode=755"}},
	}
}

// cgroupPath is the instance's cgroup below parent, e.g. /nubo/i-0123….
func cgroupPath(parent, id string) string {
	return filepath.Join("/", parent, id)
}

// throttle adds dev's I/O limits (each direction) to r.
func throttle(r *specs.LinuxResources, dev runtime.BlockDevice) {
	if dev.IOPS == 0 && dev.BPS == 0 {
		return
	}
	if r.BlockIO == nil {
		r.BlockIO = &specs.LinuxBlockIO{}
	}
	b := r.BlockIO
	rule := func(rate uint64) specs.LinuxThrottleDevice {
		t := specs.LinuxThrottleDevice{Rate: rate}
		t.Major, t.Minor = int64(dev.Major), int64(dev.Minor)
		return t
	}
	if dev.BPS > 0 {
		b.ThrottleReadBpsDevice = append(b.ThrottleReadBpsDevice, rule(dev.BPS))
		b.ThrottleWriteBpsDevice = append(b.ThrottleWriteBpsDevice, rule(dev.BPS))
	}
	if dev.IOPS > 0 {
		b.ThrottleReadIOPSDevice = append(b.ThrottleReadIOPSDevice, rule(dev.IOPS))
		b.ThrottleWriteIOPSDevice = append(b.ThrottleWriteIOPSDevice, rule(dev.IOPS))
	}
}
