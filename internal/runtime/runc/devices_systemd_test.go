package runc_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/runtime/runtimetest"
)

// debian12Instance makes a debian-12 instance over an overlay of the cached
// image, with cloud-init off (no metadata service here: it would wait 10 s
// for one) and key as admin's login key. The test skips without the image.
func debian12Instance(t *testing.T, d runtime.Driver) (runtime.Spec, string) {
	t.Helper()
	m := debian12(t)
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	rootfs := overlayRoot(t, m.RootFS, m.UIDBase)
	writeFile(t, filepath.Join(rootfs, "etc/cloud/cloud-init.disabled"), "", 0o644)
	key := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	admin := int(m.UIDBase) + 1000
	ssh := filepath.Join(rootfs, "home/admin/.ssh")
	mkdir(t, ssh, 0o700)
	writeFile(t, filepath.Join(ssh, "authorized_keys"), string(pub), 0o600)
	for _, p := range []string{ssh, filepath.Join(ssh, "authorized_keys")} {
		if err := os.Lchown(p, admin, admin); err != nil {
			t.Fatal(err)
		}
	}
	spec := runtimetest.NewSpec(t, rootfs, m.UIDBase)
	spec.Init = m.Init
	spec.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=nubo"}
	spec.Hostname = "ip-10-0-0-6"
	spec.VCPUs, spec.MemoryMiB, spec.PidsLimit = 1, 512, 1024
	return spec, key
}

// sshAdmin runs command as admin in the instance over SSH, as a user
// would: sshd and its sessions are the instance's own processes, under its
// seccomp filter.
func sshAdmin(t *testing.T, d runtime.Driver, id, key, command string) (string, error) {
	t.Helper()
	pid := pid1(t, d, id)
	cmd := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "--",
		"ssh", "-F", "/dev/null", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "admin@127.0.0.1", command)
	// stdout only, unless it fails: sudo warns on stderr that it cannot
	// resolve the host name.
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		out = append(out, ee.Stderr...)
	}
	return strings.TrimSpace(string(out)), err
}

func mustSSHAdmin(t *testing.T, d runtime.Driver, id, key, command string) string {
	t.Helper()
	out, err := sshAdmin(t, d, id, key, command)
	if err != nil {
		t.Fatalf("ssh admin@%s %q: %v: %s", id, command, err, out)
	}
	return out
}

// TestDeviceDebian12: in the systemd image, admin makes filesystems with
// e2fsprogs and mounts them with util-linux's mount through sudo (setuid
// works under the filter), on a device present from boot and one attached
// while it runs; both are there after a reboot, and mount -a mounts an
// fstab entry for one.
func TestDeviceDebian12(t *testing.T) {
	requireLoop(t)
	ctx := context.Background()
	boot := newLoop(t, "/dev/sdf", 128)
	hot := newLoop(t, "/dev/sdg", 128)
	cfg := driverConfig(t)
	d := newDriverWith(t, cfg)
	spec, key := debian12Instance(t, d)
	spec.Devices = []runtime.BlockDevice{boot}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("booted in %v", awaitConsole(t, d, spec, 1, begin).Round(time.Millisecond))
	begin = time.Now()
	if err := d.AttachDevice(ctx, spec.ID, hot); err != nil {
		t.Fatal(err)
	}
	t.Logf("AttachDevice: %v", time.Since(begin).Round(time.Microsecond))

	if got := mustSSHAdmin(t, d, spec.ID, key, "sudo -n id -u"); got != "0" {
		t.Fatalf("sudo -n id -u as admin: %q", got)
	}
	out := mustSSHAdmin(t, d, spec.ID, key, `set -e
sudo mkfs.ext4 -q /dev/sdf
sudo mkfs.ext4 -q /dev/xvdg
sudo mkdir -p /mnt/f /mnt/g
sudo mount /dev/sdf /mnt/f
sudo mount -o noatime /dev/xvdg /mnt/g
sudo chown admin: /mnt/g
echo from admin > /mnt/g/hello
stat -c %U /mnt/g/hello
findmnt -n -o SOURCE,FSTYPE /mnt/g
sudo umount -d /dev/sdf
sudo umount /dev/xvdg
findmnt /mnt/f /mnt/g || echo done`)
	if want := "admin\n/dev/.nubo/sdg ext4\ndone"; out != want {
		t.Fatalf("mkfs, mount, write and umount as admin: %q, want %q", out, want)
	}

	// A volume in fstab, as EC2 users keep theirs.
	mustSSHAdmin(t, d, spec.ID, key, "echo '/dev/xvdf /data ext4 defaults,nofail 0 2' | sudo tee -a /etc/fstab >/dev/null && sudo mkdir -p /data")
	if err := d.Stop(ctx, spec.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("booted again in %v", awaitConsole(t, d, spec, 2, begin).Round(time.Millisecond))
	// systemd's fstab generator skips device entries in a container, so
	// mount -a does it here.
	if got := mustSSHAdmin(t, d, spec.ID, key, "sudo mount -a && findmnt -n -o SOURCE,FSTYPE /data; ls /dev/xvdg"); got != "/dev/.nubo/sdf ext4\n/dev/xvdg" {
		t.Fatalf("after a boot with /dev/xvdf in fstab: %q, want /data mounted by mount -a (and /dev/xvdg still attached)", got)
	}
	if state, _ := sshAdmin(t, d, spec.ID, key, "systemctl is-system-running --wait"); state != "running" {
		t.Logf("system %s; failed units:\n%s", state, mustSSHAdmin(t, d, spec.ID, key, "systemctl --failed --no-pager --plain || true"))
	}

	if err := d.DetachDevice(ctx, spec.ID, boot.Name, false); err == nil {
		t.Fatal("detached the device mounted at /data")
	}
	mustSSHAdmin(t, d, spec.ID, key, "sudo umount /data")
	for _, dev := range []runtime.BlockDevice{boot, hot} {
		if err := d.DetachDevice(ctx, spec.ID, dev.Name, false); err != nil {
			t.Fatal(err)
		}
		notHeld(t, dev)
	}
	if content, owner := readOnHost(t, hot, "hello"); content != "from admin\n" || owner != 1000 {
		t.Fatalf("on the host: %q owned by %d, want admin's file, owned by 1000 on disk", content, owner)
	}
	if err := d.Stop(ctx, spec.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("shim: %s", lastMatching(shimLog(t, cfg, spec.ID), "mount calls"))
}

// lastMatching is the last line of text that contains s.
func lastMatching(text, s string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for _, l := range slices.Backward(lines) {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestMountFilterBootCost measures what the mount filter costs a debian-12
// boot: boots with and without it, alternately, from the same volume.
// Slow (a dozen boots): run with NUBO_TEST_BOOT_COST=1 and -v.
func TestMountFilterBootCost(t *testing.T) {
	if os.Getenv("NUBO_TEST_BOOT_COST") != "1" {
		t.Skip("set NUBO_TEST_BOOT_COST=1 to measure")
	}
	requireHost(t)
	ctx := context.Background()
	cfg := driverConfig(t)
	d := newDriverWith(t, cfg)
	spec, _ := debian12Instance(t, d)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	const rounds = 5
	times := map[bool][]time.Duration{}
	boots := 0
	for i := range 2*rounds + 1 {
		filter := i%2 == 1 // boot 0 is the first boot (host keys, …): not counted
		runc.SetMountIntercept(d, filter)
		begin := time.Now()
		if err := d.Start(ctx, spec.ID); err != nil {
			t.Fatal(err)
		}
		boots++
		took := awaitConsole(t, d, spec, boots, begin)
		if i > 0 {
			times[filter] = append(times[filter], took)
		}
		if err := d.Stop(ctx, spec.ID, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	median := func(ds []time.Duration) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	t.Logf("boot to %q over %d boots each: with the mount filter %v (median, all %v), without %v (all %v)",
		readyMarker, rounds, median(times[true]).Round(time.Millisecond), times[true], median(times[false]).Round(time.Millisecond), times[false])
	t.Logf("shim: %s", lastMatching(shimLog(t, cfg, spec.ID), "mount calls"))
}
