package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration tests build the real debian-12-minimal once into a cache
// that outlives the test run ($NUBO_IMAGE_CACHE, default
// $TMPDIR/nubo-image-cache), so that `make test` builds it once, and boot it
// as nubo's instances run: in a user namespace, over an overlay.

func imageCacheDir() string {
	if d := os.Getenv("NUBO_IMAGE_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "nubo-image-cache")
}

// buildNuboInit builds the current nubo-init, static.
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

var (
	minimalOnce sync.Once
	minimalImg  Manifest
	minimalErr  error
	minimalLog  string
)

// minimalImage returns debian-12-minimal from the cache, building it if it is
// missing or was made by an older recipe.
func minimalImage(t *testing.T) (*Builder, Manifest) {
	t.Helper()
	requireBuildTools(t)
	b := &Builder{Dir: imageCacheDir(), InitBinary: buildNuboInit(t),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	minimalOnce.Do(func() {
		const name = "debian-12-minimal"
		if m, err := b.Get(name); err == nil && m.Recipe != recipes[name].version {
			t.Logf("cached %s is of recipe %s: rebuilding", name, m.Recipe)
			if minimalErr = b.Remove(name); minimalErr != nil {
				return
			}
		}
		var progress bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		minimalImg, minimalErr = b.Build(ctx, name, &progress)
		minimalLog = progress.String()
	})
	if minimalErr != nil {
		t.Fatalf("build debian-12-minimal: %v\n%s", minimalErr, minimalLog)
	}
	return b, minimalImg
}

func TestBuildDebian12Minimal(t *testing.T) {
	b, m := minimalImage(t)
	t.Logf("debian-12-minimal: %d bytes (%.1f MB), built in %.1fs, in %s", m.SizeBytes, float64(m.SizeBytes)/1e6, m.BuildSeconds, m.RootFS)
	if m.Name != "debian-12-minimal" || m.Architecture != "x86_64" || m.UIDBase != DefaultUIDBase ||
		strings.Join(m.Init, " ") != "/sbin/nubo-init" || m.RootDeviceName != "/dev/xvda" ||
		m.SizeBytes < 20e6 || m.Created.IsZero() || m.Description == "" {
		t.Errorf("manifest %+v", m)
	}
	r := m.RootFS
	base := m.UIDBase
	owned := func(rel string, uid, gid uint32, mode uint32) {
		t.Helper()
		p, err := resolveInRoot(r, rel)
		if err != nil {
			t.Fatal(err)
		}
		st := lstat(t, p)
		if st.Uid != uid || st.Gid != gid || (mode != 0 && st.Mode&0o7777 != mode) {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", rel, st.Uid, st.Gid, st.Mode&0o7777, uid, gid, mode)
		}
	}
	owned("/", base, base, 0o755)
	owned("/usr/sbin/sshd", base, base, 0o755)
	owned("/sbin/nubo-init", base, base, 0o755)
	owned("/usr/bin/passwd", base, base, 0o4755) // setuid survived the shift
	owned("/etc/shadow", base, base+42, 0o640)   // group shadow
	owned("/root/.ssh", base, base, 0o700)
	sbin, _ := resolveInRoot(r, "/sbin")
	for _, c := range []string{"poweroff", "halt", "reboot", "shutdown"} {
		if l, err := os.Readlink(filepath.Join(sbin, c)); err != nil || l != "nubo-init" {
			t.Errorf("/sbin/%s -> %q, %v", c, l, err)
		}
	}
	if err := checkStatic(filepath.Join(r, "usr/sbin/nubo-init")); err != nil {
		t.Error(err)
	}
	checkLogin(t, m)
	if keys, _ := filepath.Glob(filepath.Join(r, "etc/ssh/ssh_host_*")); len(keys) > 0 {
		t.Errorf("host keys shipped: %v", keys)
	}
	for _, empty := range []string{"etc/machine-id", "etc/resolv.conf"} {
		if fi, err := os.Stat(filepath.Join(r, empty)); err != nil || fi.Size() != 0 {
			t.Errorf("%s should exist, empty: %v", empty, err)
		}
	}
	status, _ := os.ReadFile(filepath.Join(r, "var/lib/dpkg/status"))
	for _, pkg := range []string{"usrmerge", "libperl5.36", "systemd-sysv", "openssh-server", "sudo"} {
		if got, want := strings.Contains(string(status), "\nPackage: "+pkg+"\n"), pkg == "openssh-server" || pkg == "sudo"; got != want {
			t.Errorf("package %s installed: %v", pkg, got)
		}
	}
	for _, gone := range []string{"usr/sbin/policy-rc.d", "sbin/init"} {
		if _, err := os.Lstat(filepath.Join(r, gone)); err == nil {
			t.Errorf("%s is in the image", gone)
		}
	}
	if lists, _ := filepath.Glob(filepath.Join(r, "var/lib/apt/lists/*_*")); len(lists) > 0 {
		t.Errorf("apt lists shipped: %d", len(lists))
	}
	if debs, _ := filepath.Glob(filepath.Join(r, "var/cache/apt/archives/*.deb")); len(debs) > 0 {
		t.Errorf("apt cache shipped: %d", len(debs))
	}

	// Built: the second Build is the cached one.
	t0 := time.Now()
	again, err := b.Build(context.Background(), "debian-12-minimal", nil)
	if err != nil || !again.Created.Equal(m.Created) || time.Since(t0) > time.Second {
		t.Errorf("second Build: %v, created %v vs %v, took %s", err, again.Created, m.Created, time.Since(t0))
	}
	if list, err := b.List(); err != nil || len(list) == 0 {
		t.Errorf("List: %v %v", list, err)
	}
}

// instance boots an image the way nubo's instances run: in new user (root =
// the image's uid base), mount, network, UTS, IPC and PID namespaces, over
// an overlay whose upper layer is the instance's, so the image stays as it is.
type instance struct {
	t       *testing.T
	cmd     *exec.Cmd
	pid1    int // host PID of the instance's PID 1
	started time.Time
	mu      sync.Mutex
	console bytes.Buffer
	done    chan struct{}
	code    int
}

const bootScript = `set -e
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK,userxattr" "$M"
# Device nodes on a filesystem mounted in a user namespace cannot be opened:
# bind the host's, as runc does for unprivileged containers.
mount -t tmpfs -o mode=755,nosuid tmpfs "$M/dev"
for d in null zero full random urandom tty; do touch "$M/dev/$d"; mount --bind "/dev/$d" "$M/dev/$d"; done
mkdir "$M/dev/pts"; mount -t devpts -o newinstance,ptmxmode=0666 devpts "$M/dev/pts"; ln -s pts/ptmx "$M/dev/ptmx"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$M/run"
cp "$INIT" "$M/usr/sbin/nubo-init"
mkdir -p "$M/root/.ssh"; cp "$KEY" "$M/root/.ssh/authorized_keys"; chmod 600 "$M/root/.ssh/authorized_keys"
hostname ip-10-0-0-5
exec unshare --pid --fork --kill-child --root="$M" --mount-proc=/proc /sbin/nubo-init
`

// bootDir holds one instance's overlay layers and its login key.
type bootDir struct {
	dir, upper, work, merged, key, init string
}

func newBootDir(t *testing.T, base uint32, init string) bootDir {
	t.Helper()
	d := t.TempDir()
	// The instance's root (host uid base) must reach what it mounts and copies.
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	bd := bootDir{dir: d, upper: filepath.Join(d, "upper"), work: filepath.Join(d, "work"),
		merged: filepath.Join(d, "merged"), key: filepath.Join(d, "key"), init: filepath.Join(d, "nubo-init")}
	for _, p := range []string{bd.upper, bd.work, bd.merged} {
		os.Mkdir(p, 0o755)
		os.Chown(p, int(base), int(base))
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", bd.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	if err := copyFile(init, bd.init, 0o755); err != nil {
		t.Fatal(err)
	}
	return bd
}

func bootInstance(t *testing.T, m Manifest, bd bootDir) *instance {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", bootScript)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LOWER=" + m.RootFS, "UPPER=" + bd.upper,
		"WORK=" + bd.work, "M=" + bd.merged, "KEY=" + bd.key + ".pub", "INIT=" + bd.init,
		"NUBO_INSTANCE_ID=i-0123456789abcdef0"}
	idmap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.UIDBase), Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UidMappings:                idmap,
		GidMappings:                idmap,
		GidMappingsEnableSetgroups: true,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0}, // root of the new namespace
		Pdeathsig:                  syscall.SIGKILL,
	}
	in := &instance{t: t, cmd: cmd, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	in.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("boot: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			in.mu.Lock()
			in.console.WriteString(sc.Text() + "\n")
			in.mu.Unlock()
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		in.code = cmd.ProcessState.ExitCode()
		close(in.done)
	}()
	t.Cleanup(func() {
		select {
		case <-in.done:
		default:
			cmd.Process.Kill() // --kill-child takes PID 1 and the namespaces down
			<-in.done
		}
	})
	return in
}

func (in *instance) output() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.console.String()
}

// waitReady waits for nubo-init's readiness line and returns how long it took.
func (in *instance) waitReady() time.Duration {
	in.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(in.output(), "nubo-init: ready") {
		select {
		case <-in.done:
			in.t.Fatalf("instance ended (%d) before ready:\n%s", in.code, in.output())
		default:
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("instance not ready:\n%s", in.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(in.started)
	if in.pid1 == 0 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", in.cmd.Process.Pid, in.cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			in.pid1, _ = strconv.Atoi(f[0])
		}
		if in.pid1 == 0 {
			in.t.Fatal("cannot find the instance's PID 1")
		}
	}
	return d
}

// ssh runs a command in the instance as root, from inside its network
// namespace (the test's own; nothing leaves the machine).
func (in *instance) ssh(key, command string) (string, error) {
	cmd := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(in.pid1)+"/ns/net", "--",
		"ssh", "-F", "/dev/null", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@127.0.0.1", command)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (in *instance) exit() int {
	in.t.Helper()
	select {
	case <-in.done:
		return in.code
	case <-time.After(30 * time.Second):
		in.t.Fatalf("instance did not stop:\n%s", in.output())
		return -1
	}
}

// TestBootDebian12Minimal boots the image in a user namespace, logs in over
// SSH with a key, reboots it from inside (exit 129) and powers it off from
// inside (exit 0).
func TestBootDebian12Minimal(t *testing.T) {
	_, m := minimalImage(t)
	for _, tool := range []string{"nsenter", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	bd := newBootDir(t, m.UIDBase, buildNuboInit(t))

	in := bootInstance(t, m, bd)
	ready := in.waitReady()
	out, err := in.ssh(bd.key+"", "id -u; cat /proc/1/comm; hostname; cat /etc/machine-id; ls /etc/ssh/ssh_host_ed25519_key; cat /var/lib/nubo-init/first-boot-done")
	sshAt := time.Since(in.started)
	if err != nil {
		t.Fatalf("ssh: %v\n%s\nconsole:\n%s", err, out, in.output())
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || lines[0] != "0" || lines[1] != "nubo-init" || lines[2] != "ip-10-0-0-5" ||
		len(lines[3]) != 32 || lines[5] != "i-0123456789abcdef0" {
		t.Errorf("in the instance: %q", lines)
	}
	if !strings.Contains(in.output(), "listening on port 22") {
		t.Errorf("readiness without a listening sshd:\n%s", in.output())
	}
	t.Logf("first boot: ready in %s, first SSH command done %s after start", ready.Round(time.Millisecond), sshAt.Round(time.Millisecond))
	// Password logins are off.
	if o, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(in.pid1)+"/ns/net", "--",
		"ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no",
		"root@127.0.0.1", "true").CombinedOutput(); err == nil || !strings.Contains(string(o), "Permission denied (publickey)") {
		t.Errorf("password login: %v %s", err, o)
	}

	in.ssh(bd.key, "reboot")
	if code := in.exit(); code != 129 {
		t.Fatalf("reboot: exit %d, want 129\n%s", code, in.output())
	}
	t.Logf("console of the first boot:\n%s", in.output())

	// The host restarts it: a later boot, no first-boot work.
	in = bootInstance(t, m, bd)
	ready = in.waitReady()
	if out, err := in.ssh(bd.key, "echo ok"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("ssh after reboot: %v %q\n%s", err, out, in.output())
	}
	t.Logf("second boot: ready in %s", ready.Round(time.Millisecond))
	if strings.Contains(in.output(), "first boot") {
		t.Errorf("first-boot work ran again:\n%s", in.output())
	}
	in.ssh(bd.key, "shutdown -h now")
	if code := in.exit(); code != 0 {
		t.Fatalf("shutdown -h now: exit %d, want 0\n%s", code, in.output())
	}
	t.Logf("console of the second boot:\n%s", in.output())
}

// TestBuildDebian12 builds the systemd + cloud-init image (again if the
// cache holds one of an older recipe). It is slower (about twice
// debian-12-minimal), so it runs only with NUBO_TEST_DEBIAN12=1; the runc
// driver's tests boot it (internal/runtime/runc, TestBootDebian12).
func TestBuildDebian12(t *testing.T) {
	if os.Getenv("NUBO_TEST_DEBIAN12") != "1" {
		t.Skip("set NUBO_TEST_DEBIAN12=1 to build the systemd + cloud-init image")
	}
	requireBuildTools(t)
	const name = "debian-12"
	b := &Builder{Dir: imageCacheDir(), InitBinary: buildNuboInit(t)}
	if m, err := b.Get(name); err == nil && m.Recipe != recipes[name].version {
		t.Logf("cached %s is of recipe %s: rebuilding", name, m.Recipe)
		if err := b.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	var progress bytes.Buffer
	m, err := b.Build(context.Background(), name, &progress)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("debian-12: %d bytes (%.1f MB), built in %.1fs", m.SizeBytes, float64(m.SizeBytes)/1e6, m.BuildSeconds)
	if strings.Join(m.Init, " ") != "/sbin/init" || m.Recipe != recipes[name].version {
		t.Errorf("init %v, recipe %s", m.Init, m.Recipe)
	}
	sbin, _ := resolveInRoot(m.RootFS, "/sbin")
	if l, err := os.Readlink(filepath.Join(sbin, "init")); err != nil || !strings.Contains(l, "systemd") {
		t.Errorf("/sbin/init -> %q, %v", l, err)
	}
	for _, p := range []string{"usr/bin/cloud-init", "usr/sbin/sshd", "lib/systemd/systemd"} {
		st := lstat(t, filepath.Join(m.RootFS, p))
		if st.Uid != m.UIDBase {
			t.Errorf("%s owned by %d", p, st.Uid)
		}
	}
	if keys, _ := filepath.Glob(filepath.Join(m.RootFS, "etc/ssh/ssh_host_*")); len(keys) > 0 {
		t.Errorf("host keys shipped: %v", keys)
	}
	// What makes it boot as a nubo instance (see cloudFiles).
	unit, _ := os.ReadFile(filepath.Join(m.RootFS, "etc/systemd/system", readyUnit))
	if !strings.Contains(string(unit), "nubo-init: ready") || !strings.Contains(string(unit), "After=multi-user.target ssh.service") {
		t.Errorf("%s:\n%s", readyUnit, unit)
	}
	links := map[string]string{
		"etc/systemd/system/multi-user.target.wants/" + readyUnit: "/etc/systemd/system/" + readyUnit,
		"etc/systemd/system/console-getty.service":                "/dev/null",
	}
	for link, want := range links {
		if got, err := os.Readlink(filepath.Join(m.RootFS, link)); err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %s", link, got, err, want)
		}
	}
	for _, f := range []string{"etc/systemd/system/ssh.service.d/10-nubo-hostkeys.conf", "etc/ssh/sshd_config.d/10-nubo.conf"} {
		if _, err := os.Stat(filepath.Join(m.RootFS, f)); err != nil {
			t.Error(err)
		}
	}
	// cloud-init is on, and reads nubo's metadata service as EC2's.
	if _, err := os.Lstat(filepath.Join(m.RootFS, "etc/cloud/cloud-init.disabled")); err == nil {
		t.Error("cloud-init is disabled")
	}
	cfg, _ := os.ReadFile(filepath.Join(m.RootFS, "etc/cloud/cloud.cfg.d/90-nubo.cfg"))
	for _, want := range []string{"datasource_list: [ Ec2, None ]", "strict_id: false", "metadata_urls: [ 'http://169.254.169.254' ]",
		"config: disabled", "name: admin", `sudo: ["ALL=(ALL) NOPASSWD:ALL"]`, "ssh_genkeytypes: [rsa, ecdsa, ed25519]", " - scripts-user"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("90-nubo.cfg lacks %q:\n%s", want, cfg)
		}
	}
	for _, slow := range []string{"growpart", "resizefs", "ntp", "locale", "grub-dpkg"} {
		if strings.Contains(string(cfg), " - "+slow+"\n") {
			t.Errorf("90-nubo.cfg runs %s", slow)
		}
	}
	if ds, _ := filepath.Glob(filepath.Join(m.RootFS, "usr/local/lib/python3.*/dist-packages/DataSourceEc2.py")); len(ds) != 1 {
		t.Errorf("cloud-init's Ec2 datasource for nubo: %v", ds)
	}
	// Its output log is where EC2's documentation sends users.
	if logging, _ := os.ReadFile(filepath.Join(m.RootFS, "etc/cloud/cloud.cfg.d/05_logging.cfg")); !strings.Contains(string(logging), "output: {all: '| tee -a /var/log/cloud-init-output.log'}") {
		t.Error("cloud-init's output does not go to /var/log/cloud-init-output.log")
	}
	checkLogin(t, m)
	if fi, err := os.Stat(filepath.Join(m.RootFS, "etc/hostname")); err != nil || fi.Size() != 0 {
		t.Errorf("/etc/hostname should be empty (the runtime names the instance): %v", err)
	}
}

// checkLogin checks how users log in to a built image (login.go): the
// default user admin (uid 1000, shifted) with passwordless sudo and a
// locked password, sshd by key only with nubo-eic-keys for EC2 Instance
// Connect, and nubo-eic-keys linked to a static nubo-init.
func checkLogin(t *testing.T, m Manifest) {
	t.Helper()
	r := m.RootFS
	passwd, _ := os.ReadFile(filepath.Join(r, "etc/passwd"))
	if !strings.Contains(string(passwd), "\nadmin:x:1000:1000:Debian:/home/admin:/bin/bash\n") {
		t.Errorf("no admin in /etc/passwd:\n%s", passwd)
	}
	shadow, _ := os.ReadFile(filepath.Join(r, "etc/shadow"))
	if !strings.Contains(string(shadow), "\nadmin:!:") {
		t.Error("admin's password is not locked")
	}
	group, _ := os.ReadFile(filepath.Join(r, "etc/group"))
	for _, g := range strings.Split(defaultGroups, ",") {
		found := false
		for _, line := range strings.Split(string(group), "\n") {
			f := strings.Split(line, ":")
			if len(f) == 4 && f[0] == g && strings.Contains(","+f[3]+",", ",admin,") {
				found = true
			}
		}
		if !found {
			t.Errorf("admin is not in group %s", g)
		}
	}
	home := lstat(t, filepath.Join(r, "home/admin"))
	if home.Uid != m.UIDBase+1000 || home.Gid != m.UIDBase+1000 {
		t.Errorf("/home/admin owned by %d:%d, want %d", home.Uid, home.Gid, m.UIDBase+1000)
	}
	if _, err := os.Stat(filepath.Join(r, "home/admin/.bashrc")); err != nil {
		t.Errorf("admin's home has no /etc/skel: %v", err)
	}
	sudoers := filepath.Join(r, "etc/sudoers.d/90-nubo-admin")
	if b, _ := os.ReadFile(sudoers); !strings.Contains(string(b), "\nadmin ALL=(ALL) NOPASSWD:ALL\n") {
		t.Errorf("sudoers: %q", b)
	}
	if st := lstat(t, sudoers); st.Mode&0o7777 != 0o440 || st.Uid != m.UIDBase {
		t.Errorf("sudoers file: mode %o, uid %d", st.Mode&0o7777, st.Uid)
	}
	conf, _ := os.ReadFile(filepath.Join(r, "etc/ssh/sshd_config.d/10-nubo.conf"))
	for _, want := range []string{"PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
		"AuthorizedKeysCommand /usr/sbin/nubo-eic-keys %u", "AuthorizedKeysCommandUser nobody"} {
		if !strings.Contains(string(conf), want+"\n") {
			t.Errorf("sshd config lacks %q", want)
		}
	}
	if main, _ := os.ReadFile(filepath.Join(r, "etc/ssh/sshd_config")); !strings.Contains(string(main), "Include /etc/ssh/sshd_config.d/*.conf") {
		t.Error("sshd_config does not include sshd_config.d")
	}
	if l, err := os.Readlink(filepath.Join(r, "usr/sbin/nubo-eic-keys")); err != nil || l != "nubo-init" {
		t.Errorf("nubo-eic-keys -> %q, %v", l, err)
	}
	if err := checkStatic(filepath.Join(r, "usr/sbin/nubo-init")); err != nil {
		t.Error(err)
	}
	// sshd runs an AuthorizedKeysCommand only if root owns it and no one
	// else may write it.
	if st := lstat(t, filepath.Join(r, "usr/sbin/nubo-init")); st.Uid != m.UIDBase || st.Mode&0o022 != 0 {
		t.Errorf("nubo-init: uid %d mode %o", st.Uid, st.Mode&0o7777)
	}
	for _, left := range []string{"etc/passwd-", "etc/shadow-"} {
		if _, err := os.Lstat(filepath.Join(r, left)); err == nil {
			t.Errorf("%s left in the image", left)
		}
	}
}
