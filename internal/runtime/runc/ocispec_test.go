package runc

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
)

func testSpec() runtime.Spec {
	return runtime.Spec{
		ID: "i-0123456789abcdef0", RootFS: "/var/lib/nubo/rootfs/i-0123456789abcdef0",
		Hostname: "ip-172-31-5-9", Init: []string{"/sbin/nubo-init"}, Env: []string{"PATH=/bin"},
		VCPUs: 2, MemoryMiB: 512, PidsLimit: 1024,
		UIDBase: 100000, GIDBase: 200000, IDCount: 65536,
	}
}

func TestOCISpec(t *testing.T) {
	s := ociSpec(testSpec(), ociOptions{CgroupParent: "/nubo", Shim: testShim})
	if s.Root.Path != testSpec().RootFS || s.Root.Readonly {
		t.Errorf("root = %+v", s.Root)
	}
	if s.Process.Terminal || s.Process.Cwd != "/" || s.Process.User.UID != 0 || !slices.Equal(s.Process.Args, []string{"/sbin/nubo-init"}) {
		t.Errorf("process = %+v", s.Process)
	}
	caps := s.Process.Capabilities
	for _, set := range [][]string{caps.Bounding, caps.Effective, caps.Permitted} {
		if slices.Contains(set, "CAP_SYS_RESOURCE") {
			t.Error("CAP_SYS_RESOURCE requested: runc fails with EPERM on this host")
		}
		for _, need := range []string{"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"} {
			if !slices.Contains(set, need) {
				t.Errorf("missing %s", need)
			}
		}
	}
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		types = append(types, ns.Type)
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s, want a new one", ns.Type, ns.Path)
		}
	}
	for _, want := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.PIDNamespace, specs.MountNamespace,
		specs.UTSNamespace, specs.IPCNamespace, specs.CgroupNamespace, specs.NetworkNamespace} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s namespace", want)
		}
	}
	if m := s.Linux.UIDMappings; len(m) != 1 || m[0] != (specs.LinuxIDMapping{ContainerID: 0, HostID: 100000, Size: 65536}) {
		t.Errorf("uid mappings = %+v", m)
	}
	if m := s.Linux.GIDMappings; len(m) != 1 || m[0].HostID != 200000 {
		t.Errorf("gid mappings = %+v", m)
	}
	if s.Linux.CgroupsPath != "/nubo/i-0123456789abcdef0" {
		t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
	}
	r := s.Linux.Resources
	if *r.CPU.Quota != 200000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu = %d/%d, want 200000/100000", *r.CPU.Quota, *r.CPU.Period)
	}
	if *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 {
		t.Errorf("memory = %d, memory+swap = %d, want both 512 MiB", *r.Memory.Limit, *r.Memory.Swap)
	}
	if r.Pids.Limit != 1024 {
		t.Errorf("pids = %d", r.Pids.Limit)
	}
	if sys := mountAt(s, "/sys"); sys.Type != "sysfs" || !slices.Contains(sys.Options, "ro") {
		t.Errorf("/sys = %+v, want read-only sysfs", sys)
	}
	// systemd makes its cgroups below the instance's: the hook gives them
	// to instance root, and the mount lets it write them.
	if cg := mountAt(s, "/sys/fs/cgroup"); cg.Type != "cgroup" || slices.Contains(cg.Options, "ro") {
		t.Errorf("/sys/fs/cgroup = %+v, want a writable cgroup mount", cg)
	}
	wantHook := []string{"/usr/bin/nubo", "runc-shim", "hook", "delegate-cgroup", "--uid", "100000", "--gid", "200000"}
	if h := s.Hooks.CreateRuntime; len(h) != 1 || h[0].Path != "/usr/bin/nubo" || !slices.Equal(h[0].Args, wantHook) {
		t.Errorf("createRuntime hooks = %+v, want %q", h, wantHook)
	}
	if c := mountAt(s, "/dev/console"); c.Destination != "" {
		t.Errorf("/dev/console = %+v without a console", c)
	}
	s = ociSpec(testSpec(), ociOptions{CgroupParent: "/nubo", Shim: testShim, Console: "/dev/pts/7"})
	if c := mountAt(s, "/dev/console"); c.Source != "/dev/pts/7" || !slices.Contains(c.Options, "bind") {
		t.Errorf("/dev/console = %+v, want a bind of /dev/pts/7", c)
	}
}

func TestOCISpecJoinedNetNS(t *testing.T) {
	spec := testSpec()
	spec.NetNS = "/run/netns/nubo-i-0123"
	s := ociSpec(spec, ociOptions{CgroupParent: "/nubo", Shim: testShim, Sysfs: "/b/sys"})
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace && ns.Path != spec.NetNS {
			t.Errorf("network namespace path = %q, want %q", ns.Path, spec.NetNS)
		}
	}
	// sysfs cannot be mounted from a user namespace that does not own the
	// network namespace: one the runtime mounted for it is bound read-only.
	if sys := mountAt(s, "/sys"); sys.Source != "/b/sys" || !slices.Contains(sys.Options, "rbind") || !slices.Contains(sys.Options, "ro") {
		t.Errorf("/sys = %+v, want a read-only rbind of /b/sys", sys)
	}
}

func TestValidate(t *testing.T) {
	for name, edit := range map[string]func(*runtime.Spec){
		"id":     func(s *runtime.Spec) { s.ID = "../etc" },
		"rootfs": func(s *runtime.Spec) { s.RootFS = "rootfs" },
		"init":   func(s *runtime.Spec) { s.Init = nil },
		"vcpus":  func(s *runtime.Spec) { s.VCPUs = 0 },
		"memory": func(s *runtime.Spec) { s.MemoryMiB = 0 },
		"idmap":  func(s *runtime.Spec) { s.IDCount = 0 },
	} {
		s := testSpec()
		edit(&s)
		if s.Validate() == nil {
			t.Errorf("%s: invalid spec accepted", name)
		}
	}
	if err := testSpec().Validate(); err != nil {
		t.Errorf("valid spec rejected: %v", err)
	}
}

func mountAt(s *specs.Spec, dst string) specs.Mount {
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m
		}
	}
	return specs.Mount{}
}

var testShim = []string{"/usr/bin/nubo", "runc-shim"}

func TestOCISpecDevices(t *testing.T) {
	dev := runtime.BlockDevice{Name: "/dev/sdf", HostPath: "/dev/loop7", Major: 7, Minor: 7, IOPS: 3000, BPS: 125 << 20}
	nvme := runtime.BlockDevice{Name: "/dev/nvme1n1", HostPath: "/dev/loop8", Major: 7, Minor: 8}
	s := ociSpec(testSpec(), ociOptions{CgroupParent: "/nubo", Shim: testShim, Listener: "/b/seccomp.sock",
		DeviceDir: "/b/dev", Devices: []runtime.BlockDevice{dev, nvme}})
	m := mountAt(s, "/dev/.nubo")
	if m.Source != "/b/dev" || !slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "nodev") {
		t.Errorf("/dev/.nubo = %+v, want a bind of the node directory without nodev", m)
	}
	if m := mountAt(s, "/dev/sdf"); m.Destination != "" {
		t.Errorf("/dev/sdf is a mount point: %+v", m)
	}
	r := s.Linux.Resources.Devices
	if len(r) != 3 || r[0].Allow || !r[1].Allow || r[1].Type != "b" || *r[1].Major != 7 || *r[1].Minor != 7 || r[1].Access != "rwm" {
		t.Errorf("device rules = %+v, want deny all, then allow b 7:7 rwm and 7:8", r)
	}
	b := s.Linux.Resources.BlockIO
	if b == nil || len(b.ThrottleReadBpsDevice) != 1 || b.ThrottleWriteBpsDevice[0].Rate != 125<<20 || b.ThrottleWriteBpsDevice[0].Minor != 7 ||
		len(b.ThrottleReadIOPSDevice) != 1 || b.ThrottleWriteIOPSDevice[0].Rate != 3000 {
		t.Errorf("blockIO = %+v, want 3000 IOPS and 125 MiB/s each way on 7:7 only", b)
	}
	h := s.Hooks.CreateRuntime
	wantLinks := []string{"/usr/bin/nubo", "runc-shim", "hook", "dev-links", "--uid", "100000", "--gid", "200000",
		"--rootfs", testSpec().RootFS, "/dev/sdf", "/dev/nvme1n1"}
	if len(h) != 2 || !slices.Equal(h[1].Args, wantLinks) {
		t.Errorf("createRuntime hooks = %+v, want the delegation hook and %q", h, wantLinks)
	}
	sc := s.Linux.Seccomp
	if sc == nil || sc.ListenerPath != "/b/seccomp.sock" || sc.DefaultAction != specs.ActAllow {
		t.Fatalf("seccomp = %+v, want mount(2) sent to the listener, everything else allowed", sc)
	}
	// Each loop ioctl (0x4c00-0x4c0f) is matched by exactly one rule, and
	// no other request is.
	for req := uint64(0x4bf0); req < 0x4c20; req++ {
		var errnos []uint
		for _, c := range sc.Syscalls {
			if c.Names[0] == "ioctl" && req&c.Args[0].Value == c.Args[0].ValueTwo {
				errnos = append(errnos, *c.ErrnoRet)
			}
		}
		var want []uint
		switch {
		case req == 0x4c01:
			want = []uint{0}
		case req >= 0x4c00 && req <= 0x4c0f:
			want = []uint{uint(unix.ENOTTY)}
		}
		if !slices.Equal(errnos, want) {
			t.Errorf("ioctl %#x: errnos %v, want %v", req, errnos, want)
		}
	}
	if c := sc.Syscalls[len(sc.Syscalls)-2]; !slices.Equal(c.Names, []string{"mount"}) || c.Action != specs.ActNotify {
		t.Errorf("seccomp rule = %+v, want mount notified", c)
	}
	s = ociSpec(testSpec(), ociOptions{CgroupParent: "/nubo", Shim: testShim})
	if sc := s.Linux.Seccomp; sc == nil || sc.ListenerPath != "" || len(sc.Syscalls) != len(loopIoctls()) || len(s.Hooks.CreateRuntime) != 1 {
		t.Errorf("without devices and listener: seccomp %+v, hooks %+v; want only loop ioctls refused", s.Linux.Seccomp, s.Hooks.CreateRuntime)
	}
}

func TestMountOptions(t *testing.T) {
	for _, tc := range []struct {
		flags  uint64
		data   string
		params string
		attrs  uint64
	}{
		{0, "", "", unix.MOUNT_ATTR_NODEV},
		{unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOATIME, "errors=remount-ro,discard", "ro errors=remount-ro discard",
			unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOATIME},
		{unix.MS_SILENT, "rw,noexec,strictatime,nodev,subvol=data", "subvol=data",
			unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_STRICTATIME},
		{unix.MS_SYNCHRONOUS, "ro,noatime,relatime", "sync ro", unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_RDONLY},
	} {
		params, attrs := mountOptions(tc.flags, tc.data)
		var got []string
		for _, p := range params {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tc.params || attrs != tc.attrs {
			t.Errorf("mountOptions(%#x, %q) = %q, %#x; want %q, %#x", tc.flags, tc.data, got, attrs, tc.params, tc.attrs)
		}
	}
}

func TestXvdLink(t *testing.T) {
	for name, want := range map[string]string{"/dev/sdf": "/dev/xvdf", "/dev/sdba1": "/dev/xvdba1", "/dev/xvdf": "", "/dev/nvme1n1": "", "/dev/sd": ""} {
		if got, _ := xvdLink(name); got != want {
			t.Errorf("xvdLink(%s) = %q, want %q", name, got, want)
		}
	}
}
