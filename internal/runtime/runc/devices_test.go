package runc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/runtime/runtimetest"
)

// requireLoop skips tests that need loop devices and the mount API.
func requireLoop(t *testing.T) {
	t.Helper()
	requireHost(t)
	for _, tool := range []string{"losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("needs loop devices")
	}
}

// newLoop attaches a loop device over a fresh sparse file of mib MiB, as
// the agent does for a volume, and returns it as the device name. It is
// detached when the test ends, and must then really go: a reference the
// instance kept would leave it attached (autoclear).
func newLoop(t *testing.T, name string, mib int64) runtime.BlockDevice {
	t.Helper()
	img := filepath.Join(t.TempDir(), "volume.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, mib<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("detaching %s: %v: %s", loop, err, out)
			return
		}
		sys := filepath.Join("/sys/block", filepath.Base(loop), "loop")
		for deadline := time.Now().Add(5 * time.Second); exists(sys); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%s still attached after losetup -d: something holds it", loop)
				return
			}
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	return runtime.BlockDevice{Name: name, HostPath: loop, Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// runcExec runs a busybox shell script in the instance with `runc exec`: a
// process under the instance's seccomp filter, as the instance's own are
// (nsenter's are not), so its mounts go through the shim.
func runcExec(t *testing.T, root, id, script string) (string, error) {
	t.Helper()
	out, err := exec.Command("runc", "--root", filepath.Join(root, "runc"), "exec", id, "/bin/sh", "-c", script).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func mustRuncExec(t *testing.T, root, id, script string) string {
	t.Helper()
	out, err := runcExec(t, root, id, script)
	if err != nil {
		t.Fatalf("in %s: %q: %v: %s", id, script, err, out)
	}
	return out
}

// notHeld checks that nothing holds the device any more: the kernel gives
// an exclusive open of a block device only if no filesystem is on it.
func notHeld(t *testing.T, dev runtime.BlockDevice) {
	t.Helper()
	fd, err := unix.Open(dev.HostPath, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("%s is still held after the detach: %v", dev.HostPath, err)
	}
	unix.Close(fd)
}

// readOnHost mounts the device read-only on the host and returns the
// content and on-disk owner of file.
func readOnHost(t *testing.T, dev runtime.BlockDevice, file string) (string, uint32) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-o", "ro", dev.HostPath, dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting %s on the host: %v: %s", dev.HostPath, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	}()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, file), &st); err != nil {
		t.Fatal(err)
	}
	return string(b), st.Uid
}

// startDeviceInstance starts an instance of the busybox root filesystem
// with devs from boot, on a driver over cfg.
func startDeviceInstance(t *testing.T, cfg runc.Config, devs ...runtime.BlockDevice) (*runc.Driver, runtime.Spec) {
	t.Helper()
	d := newDriverWith(t, cfg)
	path, uid := newRootFS(t)
	// A user without privilege, to try mounts as.
	f, err := os.OpenFile(filepath.Join(path, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "user:x:1000:1000::/tmp:/bin/sh")
	f.Close()
	spec := runtimetest.NewSpec(t, path, uid)
	spec.Devices = devs
	ctx := context.Background()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	return d, spec
}

// mkfsAndMount is the script that makes an ext2 filesystem on dev (busybox
// has no mkfs.ext4; the kernel's ext4 mounts ext2) and mounts it at
// /mnt/vol as ext4.
func mkfsAndMount(dev string) string {
	return fmt.Sprintf("mke2fs -q %s >/dev/null && mkdir -p /mnt/vol && mount -t ext4 %[1]s /mnt/vol", dev)
}

// shimLog reads the instance's shim log.
func shimLog(t *testing.T, cfg runc.Config, id string) string {
	b, _ := os.ReadFile(filepath.Join(cfg.Root, "bundles", id, "shim.log"))
	return string(b)
}

// TestDeviceHotPlug attaches a volume to a running instance, whose root
// makes a filesystem on it, mounts it, writes and unmounts; after the
// detach, the data is on the device, the instance holds nothing of it, and
// it can be attached again.
func TestDeviceHotPlug(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := newLoop(t, "/dev/sdf", 64)
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg)

	begin := time.Now()
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatalf("attaching again: %v", err)
	}
	nodes := mustRuncExec(t, cfg.Root, spec.ID, "stat -L -c '%F %t:%T %u' /dev/sdf; readlink /dev/sdf; readlink /dev/xvdf")
	want := fmt.Sprintf("block special file %x:%x 0\n.nubo/sdf\nsdf", dev.Major, dev.Minor)
	if nodes != want {
		t.Fatalf("in the instance: %q, want %q", nodes, want)
	}
	// Through the link, as EC2 users name it, and unmounted by the
	// device's name, as AWS's documentation does.
	out := mustRuncExec(t, cfg.Root, spec.ID, mkfsAndMount("/dev/xvdf")+` &&
echo written inside > /mnt/vol/hello && stat -c '%u' /mnt/vol/hello &&
grep ' /mnt/vol ' /proc/self/mountinfo && umount /dev/xvdf && echo unmounted`)
	lines := strings.Split(out, "\n")
	if len(lines) != 3 || lines[0] != "0" || lines[2] != "unmounted" {
		t.Fatalf("mkfs, mount, write, umount inside: %q", out)
	}
	if mi := lines[1]; !strings.Contains(mi, "idmapped") || !strings.Contains(mi, "nodev") || !strings.Contains(mi, " - ext4 /dev/.nubo/sdf ") {
		t.Errorf("mountinfo inside: %q, want an idmapped nodev ext4 mount of /dev/.nubo/sdf", mi)
	}
	if log := shimLog(t, cfg, spec.ID); !strings.Contains(log, "mounted for the instance") {
		t.Errorf("shim log has no mount:\n%s", log)
	}
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, d, spec.ID, "ls /dev"); strings.Contains(out, "sdf") || strings.Contains(out, "xvdf") {
		t.Fatalf("/dev after the detach: %s", out)
	}
	if out, err := runcExec(t, cfg.Root, spec.ID, "mount -t ext4 /dev/sdf /mnt/vol"); err == nil {
		t.Fatalf("mounting the detached device worked: %s", out)
	}
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
		t.Fatalf("detaching again: %v", err)
	}
	notHeld(t, dev)
	content, owner := readOnHost(t, dev, "hello")
	if content != "written inside\n" || owner != 0 {
		t.Fatalf("on the host: %q owned by %d, want what the instance wrote, owned by 0 on disk", content, owner)
	}

	// Attached again: the data is there; a few rounds time it.
	var times []time.Duration
	for range 5 {
		begin := time.Now()
		if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(begin))
		got := mustRuncExec(t, cfg.Root, spec.ID, "mount -t ext4 /dev/sdf /mnt/vol && cat /mnt/vol/hello && umount /mnt/vol")
		if got != "written inside" {
			t.Fatalf("after attaching again: %q", got)
		}
		if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
			t.Fatal(err)
		}
	}
	notHeld(t, dev)
	slices.Sort(times)
	t.Logf("AttachDevice to a running instance: first %v, median of %d more %v", took.Round(time.Microsecond), len(times), times[len(times)/2].Round(time.Microsecond))
}

// TestDeviceBusy: a mounted device is not detached unless forced, wherever
// in the instance it is mounted; a forced detach unmounts it and leaves
// nothing holding it.
func TestDeviceBusy(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := newLoop(t, "/dev/sdg", 64)
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg)
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatal(err)
	}
	mustRuncExec(t, cfg.Root, spec.ID, mkfsAndMount("/dev/sdg"))
	err := d.DetachDevice(ctx, spec.ID, dev.Name, false)
	if !errors.Is(err, runtime.ErrDeviceBusy) {
		t.Fatalf("detaching a mounted device: %v, want ErrDeviceBusy", err)
	}
	t.Logf("busy: %v", err)
	// Still the instance's: it writes on.
	mustRuncExec(t, cfg.Root, spec.ID, "echo still > /mnt/vol/still && umount /mnt/vol")

	// Open, not mounted: busy too.
	mustRuncExec(t, cfg.Root, spec.ID, `sh -c 'exec 3</dev/xvdg; echo $$ > /tmp/holder; exec sleep 1000' </dev/null >/dev/null 2>&1 &
for i in $(seq 100); do [ -s /tmp/holder ] && break; sleep 0.05; done; test -s /tmp/holder`)
	err = d.DetachDevice(ctx, spec.ID, dev.Name, false)
	if !errors.Is(err, runtime.ErrDeviceBusy) || !strings.Contains(err.Error(), "open in processes") {
		t.Fatalf("detaching a device held open: %v, want ErrDeviceBusy", err)
	}
	mustExec(t, d, spec.ID, "kill $(cat /tmp/holder)")

	// Mounted only in a mount namespace of its own (as a systemd service's
	// would be): PID 1 does not see it, the detach does.
	mustRuncExec(t, cfg.Root, spec.ID, `unshare -m --propagation private sh -c 'mount -t ext4 /dev/sdg /mnt/vol && echo $$ > /tmp/private && exec sleep 1000' </dev/null >/dev/null 2>&1 &
for i in $(seq 100); do [ -s /tmp/private ] && break; sleep 0.05; done; test -s /tmp/private`)
	if out := mustExec(t, d, spec.ID, "cat /proc/1/mountinfo"); strings.Contains(out, fmt.Sprintf(" %d:%d ", dev.Major, dev.Minor)) {
		t.Fatal("PID 1 sees the private mount")
	}
	err = d.DetachDevice(ctx, spec.ID, dev.Name, false)
	if !errors.Is(err, runtime.ErrDeviceBusy) {
		t.Fatalf("detaching a device mounted in another namespace: %v, want ErrDeviceBusy", err)
	}
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, true); err != nil {
		t.Fatalf("forced detach: %v", err)
	}
	if out := mustExec(t, d, spec.ID, "cat /proc/$(cat /tmp/private)/mountinfo; ls /dev"); strings.Contains(out, fmt.Sprintf(" %d:%d ", dev.Major, dev.Minor)) || strings.Contains(out, "sdg") {
		t.Fatalf("after the forced detach:\n%s", out)
	}
	notHeld(t, dev)
	if content, _ := readOnHost(t, dev, "still"); content != "still\n" {
		t.Fatalf("on the host: %q", content)
	}
}

// TestDeviceMountChecks: the shim mounts only the instance's devices, for
// its root only, and leaves every other mount to the kernel as before.
func TestDeviceMountChecks(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := newLoop(t, "/dev/sdh", 64)
	other := newLoop(t, "/dev/sdz", 64)
	if out, err := exec.Command("mkfs.ext4", "-q", other.HostPath).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4 on the host: %v: %s", err, out)
	}
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg, dev)
	// A node of a device that is not the instance's, put in its root
	// filesystem from outside (the instance cannot make nodes).
	if err := unix.Mknod(filepath.Join(spec.RootFS, "other"), unix.S_IFBLK|0o600, int(unix.Mkdev(other.Major, other.Minor))); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(spec.RootFS, "other"), uidBase, uidBase); err != nil {
		t.Fatal(err)
	}
	mustRuncExec(t, cfg.Root, spec.ID, "mke2fs -q /dev/sdh >/dev/null && mkdir -p /mnt/vol /mnt/t /mnt/p")
	for _, tc := range []struct{ name, script, want string }{
		// EPERM, which busybox's mount words so.
		{"OtherDevice", "mount -t ext4 /other /mnt/vol", "permission denied"},
		{"NotRoot", "su -s /bin/sh user -c 'mount -t ext4 /dev/sdh /mnt/vol'", "permission denied"},
		{"NestedUserNamespace", "unshare -r -m mount -t ext4 /dev/sdh /mnt/vol", "permission denied"},
		{"NoSource", "mount -t ext4 /dev/nothing /mnt/vol", "No such file or directory"},
		{"NotADevice", "mount -t ext4 /etc/passwd /mnt/vol", ""},
		{"BadOption", "mount -t ext4 -o no_such_option /dev/sdh /mnt/vol", "Invalid argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runcExec(t, cfg.Root, spec.ID, tc.script)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("%s: %v: %q, want a failure with %q", tc.script, err, out, tc.want)
			}
			if mi := mustExec(t, d, spec.ID, "cat /proc/1/mountinfo"); strings.Contains(mi, "/mnt/vol") {
				t.Fatalf("mounted anyway:\n%s", mi)
			}
		})
	}
	// The volume is a loop device: the instance must not detach it from
	// its backing file (umount -d tries, and seems to succeed), nor see it
	// as one.
	mustRuncExec(t, cfg.Root, spec.ID, "losetup -d /dev/sdh")
	if out, err := runcExec(t, cfg.Root, spec.ID, "losetup /dev/sdh"); err == nil {
		t.Errorf("loop ioctls on the volume worked inside: %s", out)
	}
	if !exists(filepath.Join("/sys/block", filepath.Base(dev.HostPath), "loop/backing_file")) {
		t.Fatalf("%s lost its backing file", dev.HostPath)
	}
	if log := shimLog(t, cfg, spec.ID); !strings.Contains(log, "not a device of the instance") || !strings.Contains(log, "no_such_option") {
		t.Errorf("shim log lacks the refusals:\n%s", log)
	}
	// Other filesystems are the kernel's to mount, as without the filter:
	// compare with a process the filter does not see (nsenter's).
	for _, script := range []string{
		"mount -t tmpfs tmpfs /mnt/t && umount /mnt/t",
		"mount -t proc proc /mnt/p && umount /mnt/p",
		"mount --bind /etc /mnt/t && umount /mnt/t",
		"mount --bind /etc /mnt/t && mount -o remount,bind,ro /mnt/t && umount /mnt/t",
	} {
		_, plainErr := execIn(t, d, spec.ID, script)
		out, err := runcExec(t, cfg.Root, spec.ID, script)
		if (err == nil) != (plainErr == nil) {
			t.Errorf("%s: filtered %v (%s), unfiltered %v", script, err, out, plainErr)
		}
		if err != nil {
			t.Logf("%s fails in the instance either way: %s", script, out)
		}
	}
	// The instance's own device works with the options mount(8) passes,
	// and with paths relative to the caller's cwd.
	mustRuncExec(t, cfg.Root, spec.ID, "mount -t ext4 -o ro,noatime,nosuid /dev/sdh /mnt/vol && ! touch /mnt/vol/x 2>/dev/null && umount /mnt/vol")
	mustRuncExec(t, cfg.Root, spec.ID, "cd /dev/.nubo && mount -t ext4 ../sdh ../../mnt/vol && test -d /mnt/vol/lost+found && umount /mnt/vol")
	if log := shimLog(t, cfg, spec.ID); !strings.Contains(log, "source=../sdh target=../../mnt/vol") {
		t.Errorf("shim log has no mount of relative paths:\n%s", log)
	}
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
		t.Fatal(err)
	}
	notHeld(t, dev)
	notHeld(t, other)
}

// TestDeviceAtBoot: a device of the spec is there from boot and across
// restarts, and a new driver on the same root (nubo restarted) knows it.
func TestDeviceAtBoot(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := newLoop(t, "/dev/sdf", 64)
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg, dev)
	check := func() {
		t.Helper()
		nodes := mustRuncExec(t, cfg.Root, spec.ID, "stat -L -c '%F %t:%T %u' /dev/sdf; readlink /dev/sdf; readlink /dev/xvdf")
		if want := fmt.Sprintf("block special file %x:%x 0\n.nubo/sdf\nsdf", dev.Major, dev.Minor); nodes != want {
			t.Fatalf("in the instance: %q, want %q", nodes, want)
		}
	}
	check()
	mustRuncExec(t, cfg.Root, spec.ID, mkfsAndMount("/dev/sdf")+" && echo boot > /mnt/vol/boot && umount /mnt/vol")
	if err := d.Stop(ctx, spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	notHeld(t, dev)
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	check()

	d2 := newDriverWith(t, cfg)
	if err := d2.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatalf("attaching the device the instance has, from a new driver: %v", err)
	}
	mustRuncExec(t, cfg.Root, spec.ID, "mount -t ext4 /dev/sdf /mnt/vol")
	if err := d2.DetachDevice(ctx, spec.ID, dev.Name, false); !errors.Is(err, runtime.ErrDeviceBusy) {
		t.Fatalf("detaching from a new driver: %v, want ErrDeviceBusy", err)
	}
	mustRuncExec(t, cfg.Root, spec.ID, "umount /mnt/vol")
	if err := d2.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, d2, spec.ID, "ls /dev"); strings.Contains(out, "sdf") {
		t.Fatalf("/dev after the detach: %s", out)
	}
	// Detached while running: the next boot has it no more.
	if err := d2.Stop(ctx, spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, d2, spec.ID, "ls /dev"); strings.Contains(out, "sdf") {
		t.Fatalf("/dev after a restart: %s", out)
	}
	notHeld(t, dev)
}

// TestDeviceStopped: devices attached to and detached from an instance
// that does not run take effect at its next start.
func TestDeviceStopped(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	dev := newLoop(t, "/dev/sdf", 64)
	cfg := driverConfig(t)
	d := newDriverWith(t, cfg)
	path, uid := newRootFS(t)
	spec := runtimetest.NewSpec(t, path, uid)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, d, spec.ID, "readlink /dev/xvdf; test -b /dev/sdf && echo block"); out != "sdf\nblock" {
		t.Fatalf("attached before the start: %q", out)
	}
	if err := d.Stop(ctx, spec.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, d, spec.ID, "ls /dev"); strings.Contains(out, "sdf") {
		t.Fatalf("/dev after detaching while stopped: %s", out)
	}
	if err := d.AttachDevice(ctx, "i-00000000000000000", dev); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("attaching to an absent instance: %v, want ErrNotFound", err)
	}
	wrong := dev
	wrong.Minor++
	if err := d.AttachDevice(ctx, spec.ID, wrong); err == nil {
		t.Fatal("attached a device whose host path is another device")
	}
}

// mountLoop is a program that mounts and unmounts a tmpfs n times and
// prints the mean time of one mount(2) in ns.
const mountLoop = `package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	var mount time.Duration
	for range n {
		begin := time.Now()
		if err := syscall.Mount("t", os.Args[2], "tmpfs", 0, ""); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		mount += time.Since(begin)
		if err := syscall.Unmount(os.Args[2], 0); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	fmt.Println(int64(mount) / int64(n))
}
`

// TestMountFilterLatency measures what the filter adds to one mount(2)
// the shim passes on (every mount systemd makes at boot), from the same
// program run in the instance under the filter and outside it.
func TestMountFilterLatency(t *testing.T) {
	requireHost(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "go.mod"), "module mountloop\n\ngo 1.24\n", 0o644)
	writeFile(t, filepath.Join(src, "main.go"), mountLoop, 0o644)
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg)
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(spec.RootFS, "bin/mountloop"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building mountloop: %v: %s", err, out)
	}
	const n = 2000
	script := fmt.Sprintf("mkdir -p /mnt/t && mountloop %d /mnt/t", n)
	var with, without []time.Duration
	for range 3 {
		out := mustRuncExec(t, cfg.Root, spec.ID, script)
		with = append(with, time.Duration(mustAtoi(t, out)))
		out = mustExec(t, d, spec.ID, script)
		without = append(without, time.Duration(mustAtoi(t, out)))
	}
	slices.Sort(with)
	slices.Sort(without)
	t.Logf("mount(2) of a tmpfs, mean of %d, best of 3 runs: %v under the filter (the shim passes it on), %v without: +%v per mount",
		n, with[0], without[0], with[0]-without[0])
	if log := shimLog(t, cfg, spec.ID); strings.Contains(log, "mounted for the instance") {
		t.Errorf("the shim mounted a tmpfs itself:\n%s", log)
	}
}

// TestMountListenerGone: when the shim is gone, the instance's mounts fail
// with ENOSYS instead of waiting for an answer.
func TestMountListenerGone(t *testing.T) {
	requireHost(t)
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg)
	// A process under the filter that mounts once told to.
	mustRuncExec(t, cfg.Root, spec.ID, `mkdir -p /mnt/t
sh -c 'while [ ! -e /tmp/go ]; do sleep 0.05; done; mount -t tmpfs t /mnt/t 2>/tmp/err; echo $? > /tmp/rc' </dev/null >/dev/null 2>&1 &`)
	shim := shimPid(t, cfg, spec.ID)
	if err := unix.Kill(shim, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); unix.Kill(shim, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", shim)); strings.Contains(string(st), ") Z ") || time.Now().After(deadline) {
			break // a zombie until the host's init reaps it
		}
	}
	mustExec(t, d, spec.ID, "touch /tmp/go")
	rc := filepath.Join(spec.RootFS, "tmp/rc")
	for deadline := time.Now().Add(5 * time.Second); !exists(rc); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mount still waits for the dead shim")
		}
	}
	msg, _ := os.ReadFile(filepath.Join(spec.RootFS, "tmp/err"))
	if code, _ := os.ReadFile(rc); strings.TrimSpace(string(code)) == "0" || !strings.Contains(string(msg), "not implemented") {
		t.Fatalf("mount without a shim: exit %s, %q; want ENOSYS", code, msg)
	}
}

// TestDeviceLimits: a device's IOPS and BPS limits hold for the instance's
// I/O on it, from boot or from the attach, change on a new attach, and go
// with the device.
func TestDeviceLimits(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	boot := newLoop(t, "/dev/sdf", 64)
	boot.BPS = 8 << 20
	hot := newLoop(t, "/dev/sdg", 64)
	hot.IOPS = 500
	cfg := driverConfig(t)
	d, spec := startDeviceInstance(t, cfg, boot)
	blkio := filepath.Join("/sys/fs/cgroup/blkio", cgroupParent, spec.ID)
	rules := func(file string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(blkio, "blkio.throttle."+file))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	rule := func(dev runtime.BlockDevice, v uint64) string {
		return fmt.Sprintf("%d:%d %d", dev.Major, dev.Minor, v)
	}
	if got := rules("write_bps_device"); !strings.Contains(got, rule(boot, boot.BPS)) {
		t.Fatalf("write_bps_device = %q, want %s", got, rule(boot, boot.BPS))
	}
	// 12 MiB at 8 MiB/s: about 1.5 s, where the loop device takes ms.
	begin := time.Now()
	mustRuncExec(t, cfg.Root, spec.ID, "dd if=/dev/zero of=/dev/sdf bs=1M count=12 oflag=direct 2>/dev/null")
	if took := time.Since(begin); took < time.Second {
		t.Errorf("12 MiB written in %v at 8 MiB/s", took)
	}

	if err := d.AttachDevice(ctx, spec.ID, hot); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"read_iops_device", "write_iops_device"} {
		if got := rules(f); !strings.Contains(got, rule(hot, hot.IOPS)) {
			t.Fatalf("%s = %q, want %s", f, got, rule(hot, hot.IOPS))
		}
	}
	hot.IOPS, hot.BPS = 0, 16<<20 // the volume modified: attached again
	if err := d.AttachDevice(ctx, spec.ID, hot); err != nil {
		t.Fatal(err)
	}
	if got := rules("write_iops_device"); strings.Contains(got, fmt.Sprintf("%d:%d ", hot.Major, hot.Minor)) {
		t.Errorf("write_iops_device = %q after the limit was lifted", got)
	}
	if got := rules("read_bps_device"); !strings.Contains(got, rule(hot, hot.BPS)) {
		t.Errorf("read_bps_device = %q, want %s", got, rule(hot, hot.BPS))
	}
	if err := d.DetachDevice(ctx, spec.ID, hot.Name, false); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device"} {
		if got := rules(f); strings.Contains(got, fmt.Sprintf("%d:%d ", hot.Major, hot.Minor)) {
			t.Errorf("%s = %q after the detach", f, got)
		}
	}
}
