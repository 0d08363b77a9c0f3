package runc_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nubo/internal/image"
	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

// readyMarker is what the agent waits for on the console (agent.ReadyMarker);
// debian-12's nubo-ready.service prints it.
const readyMarker = "nubo-init: ready"

// debian12 returns the debian-12 image from the image cache that
// internal/image's tests share ($NUBO_IMAGE_CACHE, default
// $TMPDIR/nubo-image-cache). It builds it only if NUBO_TEST_DEBIAN12=1 or
// the cache holds one of an older recipe, and skips otherwise, so the suite
// stays fast where nobody asked for the systemd image.
func debian12(t *testing.T) image.Manifest {
	t.Helper()
	const name = "debian-12"
	dir := os.Getenv("NUBO_IMAGE_CACHE")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "nubo-image-cache")
	}
	b := &image.Builder{Dir: dir}
	m, err := b.Get(name)
	switch {
	case err == nil && m.Recipe == image.RecipeVersion(name):
		return m
	case err != nil && os.Getenv("NUBO_TEST_DEBIAN12") != "1":
		t.Skipf("no %s in %s: set NUBO_TEST_DEBIAN12=1 to build it (about a minute)", name, dir)
	}
	for _, tool := range []string{"mmdebstrap", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to build %s", tool, name)
		}
	}
	b.InitBinary = buildNuboInit(t)
	if err == nil {
		t.Logf("cached %s is of recipe %s: rebuilding", name, m.Recipe)
		if err := b.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m, err = b.Build(ctx, name, &progress)
	if err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, progress.String())
	}
	return m
}

// buildNuboInit builds the current nubo-init, static, for an image build.
func buildNuboInit(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "nubo-init")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "nubo/cmd/nubo-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nubo-init: %v\n%s", err, out)
	}
	return bin
}

// overlayRoot mounts a writable overlay over rootfs, as an instance's root
// volume is, so that the image itself is never booted; it is unmounted when
// the test ends (after the instances on it are deleted, if the driver was
// made later).
func overlayRoot(t *testing.T, lower string, uid uint32) string {
	t.Helper()
	dir := reachableTempDir(t)
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, p := range []string{upper, work, merged} {
		mkdir(t, p, 0o755)
	}
	// The overlay's root takes the upper directory's owner: instance root.
	if err := os.Chown(upper, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, merged).CombinedOutput(); err != nil {
		t.Fatalf("mounting the overlay: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", merged).CombinedOutput(); err != nil {
			t.Errorf("unmounting the overlay: %v: %s", err, out)
		}
	})
	return merged
}

// cgroupLayout describes the host's cgroup setup as a privileged systemd
// would change it: the cgroup mounts with their options, the hierarchies,
// and each hierarchy's root files with the contents of the small ones that
// say how it is set up. Directories (other cgroups, made and removed by
// anything on the host) are left out.
func cgroupLayout(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], "/sys/fs/cgroup") {
			// Without the mount ID and parent ID, which a remount keeps anyway.
			b.WriteString(strings.Join(f[2:], " ") + "\n")
		}
	}
	hiers, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hiers {
		dir := filepath.Join("/sys/fs/cgroup", h.Name())
		ents, _ := os.ReadDir(dir)
		var files []string
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			files = append(files, e.Name())
			switch e.Name() {
			case "release_agent", "notify_on_release", "cgroup.clone_children", "cgroup.sane_behavior",
				"cgroup.controllers", "cgroup.subtree_control", "cgroup.max.depth", "cgroup.max.descendants":
				v, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				files[len(files)-1] += "=" + strings.TrimSpace(string(v))
			}
		}
		fmt.Fprintf(&b, "%s: %s\n", h.Name(), strings.Join(files, " "))
	}
	return b.String()
}

// awaitConsole waits until the console log holds n readiness lines and
// returns how long that took from begin.
func awaitConsole(t *testing.T, d runtime.Driver, spec runtime.Spec, n int, begin time.Time) time.Duration {
	t.Helper()
	deadline := begin.Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(spec.ConsoleLog)
		if bytes.Count(b, []byte(readyMarker)) >= n {
			return time.Since(begin)
		}
		if st, err := d.State(context.Background(), spec.ID); err != nil || st.Status != runtime.Running {
			t.Fatalf("instance not running before it was ready: %+v, %v; console:\n%s", st, err, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the console after %v:\n%s", readyMarker, time.Since(begin), b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkUp checks a ready debian-12 instance: systemd is PID 1 and done
// booting (running, or degraded with the failed units logged), sshd
// listens, and a login with the test's key works.
func checkUp(t *testing.T, d runtime.Driver, spec runtime.Spec, key string) {
	t.Helper()
	if got := mustExec(t, d, spec.ID, "cat /proc/1/comm"); got != "systemd" {
		t.Fatalf("PID 1 is %q, want systemd", got)
	}
	// --wait: nubo-ready runs once multi-user.target is reached; a few
	// jobs (graphical.target) may still be finishing.
	state, _ := execIn(t, d, spec.ID, "timeout 60 systemctl is-system-running --wait")
	state = strings.TrimSpace(state)
	switch state {
	case "running":
	case "degraded":
		t.Logf("system degraded; failed units:\n%s", mustExec(t, d, spec.ID, "systemctl --failed --no-pager --plain; journalctl -b -p warning --no-pager | tail -n 40"))
	default:
		t.Fatalf("systemctl is-system-running: %q; jobs:\n%s", state, mustExec(t, d, spec.ID, "systemctl list-jobs --no-pager; systemctl --failed --no-pager"))
	}
	if got := mustExec(t, d, spec.ID, "systemctl is-active ssh.service"); got != "active" {
		t.Fatalf("ssh.service is %q", got)
	}
	if got := mustExec(t, d, spec.ID, "hostname"); got != spec.Hostname {
		t.Errorf("hostname inside = %q, want %q (the runtime's)", got, spec.Hostname)
	}
	// No metadata service here: cloud-init waits 10 s for one, then boots
	// with its None datasource (internal/image tests it with one).
	if got := mustExec(t, d, spec.ID, "cloud-init status 2>&1 || true"); !strings.Contains(got, "status: done") {
		t.Errorf("cloud-init status = %q, want done", got)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Log("no ssh client (Debian package openssh-client): login not tried")
		return
	}
	pid := pid1(t, d, spec.ID)
	cmd := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "--",
		"ssh", "-F", "/dev/null", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@127.0.0.1", "cat /proc/1/comm; id -u")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Fields(string(out))[0] != "systemd" {
		t.Fatalf("ssh root@instance: %v: %s", err, out)
	}
}

// TestBootDebian12 boots the systemd image with the runc driver, unprivileged,
// over an overlay of the cached image: it must get ready (sshd up), power
// off on Stop, reboot itself with the exit code the agent restarts on, boot
// again from the same volume, and leave the host's cgroup setup as it was.
func TestBootDebian12(t *testing.T) {
	requireHost(t)
	m := debian12(t)
	for _, tool := range []string{"mount", "umount", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	before := cgroupLayout(t)
	rootfs := overlayRoot(t, m.RootFS, m.UIDBase)
	// The instance's login key, as cloud-init would install it.
	key := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rootfs, "root/.ssh/authorized_keys"), string(pub), 0o600)
	if err := os.Lchown(filepath.Join(rootfs, "root/.ssh/authorized_keys"), int(m.UIDBase), int(m.UIDBase)); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	d := newDriver(t)
	spec := runtimetest.NewSpec(t, rootfs, m.UIDBase)
	spec.Init = m.Init
	spec.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=nubo"}
	spec.Hostname = "ip-10-0-0-5"
	spec.VCPUs, spec.MemoryMiB, spec.PidsLimit = 1, 512, 1024
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}

	// First boot: host keys and the machine ID are made.
	begin := time.Now()
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	first := awaitConsole(t, d, spec, 1, begin)
	checkUp(t, d, spec, key)
	machineID := mustExec(t, d, spec.ID, "cat /etc/machine-id")

	// Stop: systemd powers off (SIGRTMIN+4); reboot(2) in a PID namespace
	// ends it as if by SIGINT, hence 130 (or 0 if it just exits).
	const grace = 30 * time.Second
	begin = time.Now()
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(begin)
	st, err := d.State(ctx, spec.ID)
	if err != nil || st.Status != runtime.Stopped || (st.ExitCode != 0 && st.ExitCode != 130) {
		t.Fatalf("after Stop: %+v, %v; want stopped with 0 or 130 (powered off)", st, err)
	}
	if stopTook > grace/2 {
		t.Errorf("Stop took %v: systemd did not power off by itself", stopTook)
	}
	b, _ := os.ReadFile(spec.ConsoleLog)
	if !bytes.Contains(b, []byte("Powering off")) {
		t.Errorf("console has no shutdown:\n%s", b)
	}
	t.Logf("Stop: powered off in %v, exit code %d", stopTook.Round(time.Millisecond), st.ExitCode)

	// Later boot from the same volume.
	begin = time.Now()
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	later := awaitConsole(t, d, spec, 2, begin)
	checkUp(t, d, spec, key)
	if got := mustExec(t, d, spec.ID, "cat /etc/machine-id"); got != machineID {
		t.Logf("machine ID changed across boots: %s → %s", machineID, got)
	}

	// A reboot from inside ends PID 1 as by SIGHUP: 129, which the agent
	// answers with a Start.
	execIn(t, d, spec.ID, "systemctl reboot")
	st = runtimetest.Await(t, d, spec.ID, grace, func(st runtime.State) bool { return st.Status == runtime.Stopped })
	if st.ExitCode != 129 {
		t.Errorf("after systemctl reboot: %+v, want exit code 129", st)
	}
	t.Logf("boot to %q: first %v, later %v; reboot inside: exit code %d",
		readyMarker, first.Round(time.Millisecond), later.Round(time.Millisecond), st.ExitCode)
	if testing.Verbose() {
		b, _ = os.ReadFile(spec.ConsoleLog)
		t.Logf("console:\n%s", b)
	}

	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	assertNoCgroups(t, spec.ID)
	if after := cgroupLayout(t); after != before {
		t.Errorf("the host's cgroup setup changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestCgroupDelegation: instance root owns its cgroups (so an init can make
// its own below them) but not their limits.
func TestCgroupDelegation(t *testing.T) {
	requireHost(t)
	d, spec := startInstance(t, func(s *runtime.Spec) { s.MemoryMiB = 64 })
	out := mustExec(t, d, spec.ID, `cd /sys/fs/cgroup
mkdir memory/sub systemd/sub pids/sub && echo made
echo $$ > systemd/sub/cgroup.procs && echo moved
{ echo 1073741824 > memory/memory.limit_in_bytes; } 2>/dev/null || echo limit kept
{ echo max > pids/pids.max; } 2>/dev/null || echo pids kept
cat memory/memory.limit_in_bytes`)
	want := []string{"made", "moved", "limit kept", "pids kept", strconv.FormatInt(spec.MemoryMiB<<20, 10)}
	if got := strings.Split(out, "\n"); !slices.Equal(got, want) {
		t.Fatalf("in the instance's cgroups: %q, want %q", got, want)
	}
	dir := filepath.Join("/sys/fs/cgroup/memory", cgroupParent, spec.ID)
	for _, f := range []string{"", "cgroup.procs", "tasks"} {
		if got := ownerOf(t, filepath.Join(dir, f)); got != uidBase {
			t.Errorf("memory cgroup %q owned by %d, want %d", f, got, uidBase)
		}
	}
	if got := ownerOf(t, filepath.Join(dir, "memory.limit_in_bytes")); got != 0 {
		t.Errorf("memory.limit_in_bytes owned by %d, want host root", got)
	}
}

// ownerOf returns the owner of path.
func ownerOf(t *testing.T, path string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}
