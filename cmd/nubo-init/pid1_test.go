package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The integration test runs the real, static nubo-init as PID 1 of a new PID
// namespace (unshare --pid --fork --mount-proc) over a temporary root whose
// sshd is a shell script, and drives it as the host and as a user would.

// buildInit builds nubo-init as the image ships it: static, no cgo.
func buildInit(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "nubo-init")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const fakeSSHD = `#!/bin/sh
R=%q
echo "fake-sshd: started $*"
[ -d "$R/run/sshd" ] || echo "fake-sshd: /run/sshd missing"
[ -f "$R/etc/ssh/ssh_host_ed25519_key" ] || echo "fake-sshd: host key missing"
# An orphan for PID 1 to reap: its parent exits at once, and it lives until
# the test creates R/release.
sh -c '(while [ ! -e "$0/release" ]; do sleep 0.05; done) & echo $! > "$0/orphan.pid"' "$R"
if [ -e "$R/crash-once" ]; then rm "$R/crash-once"; echo "fake-sshd: crashing"; exit 1; fi
if [ -e "$R/do" ]; then cmd=$(cat "$R/do"); rm "$R/do"; (sleep 0.2; echo "fake-sshd: running $cmd"; $cmd) & fi
trap 'echo "fake-sshd: got SIGTERM"; exit 0' TERM
trap 'echo "fake-sshd: reloading keys"' HUP
while :; do sleep 1 & wait $!; done
`

// fakeRoot lays out a root with a fake sshd and ssh-keygen, one first-boot
// script and one boot script that append to R/trace, and the shutdown
// commands linked to bin.
func fakeRoot(t *testing.T, bin string) string {
	t.Helper()
	r := t.TempDir()
	writeScript(t, filepath.Join(r, "usr/sbin/sshd"), fmt.Sprintf(fakeSSHD, r)[len("#!/bin/sh\n"):], 0o755)
	writeScript(t, filepath.Join(r, "usr/bin/ssh-keygen"),
		`echo "fake-keygen: $*"; for f; do :; done; mkdir -p "$(dirname "$f")"; touch "$f"
t=${f##*ssh_host_}; echo "ssh-${t%_key} QUFBQQ== root@fake" > "$f.pub"`, 0o755)
	writeScript(t, filepath.Join(r, "etc/nubo-init/first-boot.d/10-once"), "echo first >> "+r+"/trace", 0o755)
	writeScript(t, filepath.Join(r, "etc/nubo-init/boot.d/10-every"), "echo boot >> "+r+"/trace", 0o755)
	os.MkdirAll(filepath.Join(r, "sbin"), 0o755)
	for _, c := range []string{"poweroff", "halt", "reboot", "shutdown"} {
		if err := os.Symlink(bin, filepath.Join(r, "sbin", c)); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// pid1 is one boot of nubo-init in its own PID namespace.
type pid1 struct {
	t       *testing.T
	cmd     *exec.Cmd // unshare
	hostPID int       // nubo-init, seen from the host
	mu      sync.Mutex
	lines   []string
	done    chan struct{} // closed when unshare exited
	code    int
}

func bootPID1(t *testing.T, bin, root string, args ...string) *pid1 {
	t.Helper()
	return bootPID1Env(t, bin, root, []string{"NUBO_INSTANCE_ID=i-0123456789abcdef0"}, args...)
}

// bootPID1Env boots with env added to the test's environment. Unless args
// name one, the metadata service is a local one that knows nothing: tests
// never ask the host's own 169.254.169.254.
func bootPID1Env(t *testing.T, bin, root string, env []string, args ...string) *pid1 {
	t.Helper()
	if !slices.Contains(args, "-imds") {
		args = append(args, "-imds", newFakeIMDS(t, map[string]string{}).URL)
	}
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", bin, "-root", root}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pid1{t: t, cmd: cmd, done: make(chan struct{})}
	t.Cleanup(p.kill)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.hostPID == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nubo-init did not start under unshare")
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			p.hostPID, _ = strconv.Atoi(f[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

func (p *pid1) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill() // --kill-child takes the namespace down with it
		<-p.done
	}
}

func (p *pid1) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitFor waits until a console line contains s.
func (p *pid1) waitFor(s string) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.output(), s) {
		select {
		case <-p.done:
			p.t.Fatalf("nubo-init exited (%d) before printing %q:\n%s", p.code, s, p.output())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q on the console:\n%s", s, p.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exit waits for nubo-init to end and returns its exit code.
func (p *pid1) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(20 * time.Second):
		p.t.Fatalf("nubo-init did not exit:\n%s", p.output())
		return -1
	}
}

// hostPIDOf finds the host PID of nsPID in the PID namespace of init.
func hostPIDOf(init, nsPID int) (int, bool) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return 0, false
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); l != ns {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(nsPID) {
				return pid, true
			}
		}
	}
	return 0, false
}

func TestPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare --pid")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	bin := buildInit(t)
	root := fakeRoot(t, bin)
	trace := func() string { b, _ := os.ReadFile(filepath.Join(root, "trace")); return string(b) }

	t.Run("first boot, reaping, restart, SIGTERM exits 0", func(t *testing.T) {
		os.WriteFile(filepath.Join(root, "crash-once"), nil, 0o644)
		p := bootPID1(t, bin, root)
		p.waitFor("nubo-init: ready")
		out := p.output()
		for _, want := range []string{
			"nubo-init: starting (pid 1)",
			"nubo-init: first boot: preparing the instance",
			"fake-keygen: -q -N  -t ed25519 -f " + root + "/etc/ssh/ssh_host_ed25519_key",
			"fake-keygen: -q -N  -t ecdsa -f " + root + "/etc/ssh/ssh_host_ecdsa_key",
			"nubo-init: running first-boot.d/10-once",
			"nubo-init: running boot.d/10-every",
			"fake-sshd: started -D -e",
			"fake-sshd: crashing",
			"ended: exit status 1; restarting in 100ms",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("console lacks %q", want)
			}
		}
		// The slow RSA key comes after readiness, and sshd is left alone
		// (a reload would refuse connections for a moment).
		p.waitFor("for sshd's next start")
		if out := p.output(); strings.Index(out, "fake-keygen: -q -N  -t rsa") < strings.Index(out, "nubo-init: ready") ||
			strings.Contains(out, "fake-sshd: reloading keys") {
			t.Errorf("RSA host key made before readiness, or sshd reloaded:\n%s", out)
		}
		for _, bad := range []string{"/run/sshd missing", "host key missing"} {
			if strings.Contains(out, bad) {
				t.Errorf("console has %q", bad)
			}
		}
		if id, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(strings.TrimSpace(string(id))) != 32 {
			t.Errorf("machine-id %q", id)
		}

		// The orphan was reparented to PID 1; once it exits it must be reaped
		// (an unreaped child stays in /proc as a zombie).
		b, err := os.ReadFile(filepath.Join(root, "orphan.pid"))
		if err != nil {
			t.Fatal(err)
		}
		nsPID, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		orphan, ok := hostPIDOf(p.hostPID, nsPID)
		if !ok {
			t.Fatalf("orphan (ns pid %d) not found", nsPID)
		}
		if pp, _ := parentOf(orphan); pp != p.hostPID {
			t.Fatalf("orphan's parent is %d, want nubo-init %d", pp, p.hostPID)
		}
		os.WriteFile(filepath.Join(root, "release"), nil, 0o644)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", orphan)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan))
				t.Fatalf("orphan %d not reaped: %s", orphan, st)
			}
			time.Sleep(20 * time.Millisecond)
		}

		syscall.Kill(p.hostPID, syscall.SIGTERM)
		if code := p.exit(); code != 0 {
			t.Errorf("SIGTERM: exit %d, want 0\n%s", code, p.output())
		}
		out = p.output()
		if n := strings.Count(out, "nubo-init: ready"); n != 1 {
			t.Errorf("%d readiness lines, want 1", n)
		}
		for _, want := range []string{"fake-sshd: got SIGTERM", "nubo-init: powered off (exit 0)"} {
			if !strings.Contains(out, want) {
				t.Errorf("console lacks %q:\n%s", want, out)
			}
		}
		if got := trace(); got != "first\nboot\n" {
			t.Errorf("trace %q", got)
		}
	})

	t.Run("later boot, stubborn process, SIGINT exits 129", func(t *testing.T) {
		writeScript(t, filepath.Join(root, "etc/nubo-init/boot.d/20-stubborn"),
			`(trap '' TERM; exec sleep 60) > /dev/null 2>&1 &`, 0o755)
		t.Cleanup(func() { os.Remove(filepath.Join(root, "etc/nubo-init/boot.d/20-stubborn")) })
		p := bootPID1(t, bin, root, "-grace", "300ms")
		p.waitFor("nubo-init: ready")
		syscall.Kill(p.hostPID, syscall.SIGINT)
		if code := p.exit(); code != 129 {
			t.Errorf("SIGINT: exit %d, want 129\n%s", code, p.output())
		}
		out := p.output()
		for _, want := range []string{"processes still running after 300ms: killing them", "nubo-init: rebooting (exit 129)"} {
			if !strings.Contains(out, want) {
				t.Errorf("console lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "first boot") {
			t.Error("first-boot work ran again")
		}
		if got := trace(); got != "first\nboot\nboot\n" {
			t.Errorf("trace %q", got)
		}
	})

	for _, tc := range []struct {
		command string
		code    int
	}{
		{"reboot", 129},
		{"shutdown -r now", 129},
		{"poweroff", 0},
		{"shutdown -h now", 0},
		{"halt", 0},
	} {
		t.Run("inside: "+tc.command, func(t *testing.T) {
			os.WriteFile(filepath.Join(root, "do"), []byte(filepath.Join(root, "sbin", tc.command)), 0o644)
			p := bootPID1(t, bin, root)
			if code := p.exit(); code != tc.code {
				t.Errorf("%s: exit %d, want %d\n%s", tc.command, code, tc.code, p.output())
			}
			if !strings.Contains(p.output(), "fake-sshd: got SIGTERM") {
				t.Errorf("sshd not stopped:\n%s", p.output())
			}
		})
	}
}
