package runc_test

import (
	"bytes"
	"encoding/json"

	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/runtime/runtimetest"
)

// hibernateInit is a Hibernatable test instance's PID 1: it fills a 64 MiB
// tmpfs file with random bytes (and records its SHA-256), and runs a
// counter, a shell of its own that keeps the count in a variable and
// writes "<its PID inside> <count>" to /tmp/counter every 100 ms (and
// every 10th tick "tick N" to the console). While /tmp/tcp exists, it
// holds an established TCP connection over loopback (two nc); when it is
// removed, they are ended.
const hibernateInit = `#!/bin/sh
trap 'exit 0' TERM
echo "init up as pid $$"
head -c 67108864 /dev/urandom > /run/blob
sha256sum /run/blob | cut -d' ' -f1 > /run/blob.sha
/bin/sh -c 'n=0; while :; do n=$((n+1)); echo "$$ $n" > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; [ $((n % 10)) = 0 ] && echo "tick $n"; sleep 0.1; done' &
tcp=
while :; do
	if [ -e /tmp/tcp ] && [ -z "$tcp" ]; then
		tcp=1; (sleep 999 | nc -l -p 7777) & sleep 0.3; (sleep 999 | nc 127.0.0.1 7777) &
	elif [ ! -e /tmp/tcp ] && [ -n "$tcp" ]; then
		tcp=; kill $(pidof nc) $(pidof sleep)
	fi
	sleep 0.1 & wait $!
done
`

// newHibernator is a driver for Hibernatable instances, skipping the test
// where CRIU cannot checkpoint; its Root is reachable by instance root, as
// hibernation needs (see hibernate.go).
func newHibernator(t *testing.T) (*runc.Driver, runc.Config) {
	t.Helper()
	requireHost(t)
	if err := runc.CheckCRIU(context.Background(), runc.CRIUPath); err != nil {
		t.Skipf("CRIU cannot checkpoint here: %v", err)
	}
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		t.Skip("needs iptables (CRIU's network lock)")
	}
	cfg := driverConfig(t)
	cfg.Root = filepath.Join(reachableTempDir(t), "runtime")
	t.Cleanup(func() { assertNoLeftovers(t, cfg) }) // after the driver's cleanup
	d := newDriverWith(t, cfg)
	t.Cleanup(func() { // before the driver's cleanup deletes the bundles
		if !t.Failed() {
			return
		}
		logs, _ := filepath.Glob(filepath.Join(cfg.Root, "bundles/*/criu/*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("%s (last lines):\n%s", l, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return d, cfg
}

// assertNoLeftovers checks that runc holds no container and that no mount
// of the driver's root is left.
func assertNoLeftovers(t *testing.T, cfg runc.Config) {
	t.Helper()
	out, err := exec.Command("runc", "--root", filepath.Join(cfg.Root, "runc"), "list", "-q").CombinedOutput()
	if err != nil {
		t.Errorf("runc list: %v: %s", err, out)
	} else if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("runc containers left: %s", s)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(cfg.Root)) {
		t.Errorf("mounts left under %s", cfg.Root)
	}
}

func hibernatableSpec(t *testing.T) runtime.Spec {
	path, uid := newRootFS(t)
	writeFile(t, filepath.Join(path, "sbin/hinit"), hibernateInit, 0o755)
	os.Lchown(filepath.Join(path, "sbin/hinit"), uidBase, uidBase)
	spec := runtimetest.NewSpec(t, path, uid)
	spec.Init = []string{"/sbin/hinit"}
	spec.MemoryMiB = 256 // the 64 MiB tmpfs file is charged to the instance
	spec.Hibernatable = true
	return spec
}

// counter reads the test init's counter: the counting shell's PID inside
// and its count; 0, 0 before the first tick.
func counter(t *testing.T, spec runtime.Spec) (pid, n int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(spec.RootFS, "tmp/counter"))
	if os.IsNotExist(err) {
		return 0, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("counter file %q", b)
	}
	return mustAtoi(t, f[0]), mustAtoi(t, f[1])
}

func awaitCounter(t *testing.T, spec runtime.Spec, atLeast int) (pid, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pid, n = counter(t, spec); n >= atLeast {
			return pid, n
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter at %d after 20 s, want %d", n, atLeast)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func state(t *testing.T, d runtime.Driver, id string) runtime.State {
	t.Helper()
	st, err := d.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestHibernate: a Hibernatable instance prepared, started, checkpointed
// and restored keeps its processes (PIDs inside, a shell variable) and its
// memory (a tmpfs file); a failed checkpoint leaves it running.
func TestHibernate(t *testing.T) {
	d, cfg := newHibernator(t)
	ctx := context.Background()
	spec := hibernatableSpec(t)
	id := spec.ID
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}

	ns, err := d.Prepare(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st := state(t, d, id); st.Status != runtime.Created {
		t.Fatalf("prepared: %+v, want created", st)
	}
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	if got, err := os.Readlink(ns); err != nil || got == hostNS {
		t.Fatalf("Prepare's netns %s = %q, %v: want a namespace of the instance's own", ns, got, err)
	}
	if again, err := d.Prepare(ctx, id); err != nil || again != ns {
		t.Fatalf("Prepare again = %q, %v; want %q", again, err, ns)
	}
	checkHibernatableConfig(t, filepath.Join(cfg.Root, "bundles", id, "config.json"))
	time.Sleep(300 * time.Millisecond)
	if _, n := counter(t, spec); n != 0 {
		t.Fatalf("prepared instance counts (%d): PID 1 runs before Start", n)
	}

	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	st := state(t, d, id)
	if st.Status != runtime.Running {
		t.Fatalf("started: %+v", st)
	}
	if again, err := d.Prepare(ctx, id); err != nil || again != ns {
		t.Fatalf("Prepare of the running instance = %q, %v; want %q", again, err, ns)
	}
	awaitCounter(t, spec, 5)
	root := fmt.Sprintf("/proc/%d/root", st.Pid)
	for deadline := time.Now().Add(20 * time.Second); !exists(root + "/run/blob.sha"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no /run/blob.sha after 20 s")
		}
	}
	blobSum := sha256File(t, root+"/run/blob")
	if inside := strings.TrimSpace(readFile(t, root+"/run/blob.sha")); inside != blobSum {
		t.Fatalf("blob sha256 inside %s, from the host %s", inside, blobSum)
	}
	if got := mustExec(t, d, id, "ip -o link show lo | grep -c UP || true"); got != "1" {
		t.Logf("loopback state inside: %q", mustExec(t, d, id, "ip -o link"))
	}

	t.Run("FailedCheckpointKeepsRunning", func(t *testing.T) {
		// An established TCP connection (over loopback, made by PID 1) no
		// longer fails a save: CRIU closes it (tcp-close); it stays up for
		// the checkpoints below. A process entered from the host (its
		// session leader outside the instance) does fail the save.
		writeFile(t, filepath.Join(spec.RootFS, "tmp/tcp"), "", 0o644)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			out, _ := execIn(t, d, id, "netstat -tn 2>&1 | grep -c ESTABLISHED")
			if strings.TrimSpace(out) == "2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no TCP connection inside: %q", out)
			}
		}
		mustExec(t, d, id, "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /tmp/entered")
		_, before := counter(t, spec)
		dir := filepath.Join(t.TempDir(), "img")
		mkdir(t, dir, 0o700)
		err := d.Checkpoint(ctx, id, dir)
		if err == nil {
			t.Fatal("Checkpoint with a process entered from the host succeeded")
		}
		t.Logf("Checkpoint error (as wanted): %v", err)
		if !strings.Contains(err.Error(), "CRIU:") {
			t.Errorf("error %q does not quote CRIU's log", err)
		}
		if got := state(t, d, id); got.Status != runtime.Running || got.Pid != st.Pid {
			t.Fatalf("after the failed checkpoint: %+v, want running as PID %d", got, st.Pid)
		}
		awaitCounter(t, spec, before+3)
		mustExec(t, d, id, "kill $(cat /tmp/entered)")
	})
	t.Run("InvalidDir", func(t *testing.T) {
		if err := d.Checkpoint(ctx, id, "relative/img"); err == nil {
			t.Fatal("Checkpoint into a relative path succeeded")
		}
		if got := state(t, d, id); got.Status != runtime.Running {
			t.Fatalf("after: %+v", got)
		}
	})
	if t.Failed() {
		return
	}

	counterPid, _ := counter(t, spec)
	// As the agent does: a root-only parent, the image directory left to
	// runc to make.
	dir := imageDir(t)
	began := time.Now()
	if err := d.Checkpoint(ctx, id, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("Checkpoint took %v", time.Since(began))
	logGaps(t, filepath.Join(cfg.Root, "bundles", id, "criu/dump.log"))
	_, atCheckpoint := counter(t, spec)
	st = state(t, d, id)
	if st.Status != runtime.Stopped {
		t.Fatalf("after Checkpoint: %+v, want stopped", st)
	}
	t.Logf("after Checkpoint: %+v, image %s", st, du(dir))
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("image dir: %v %v, want 0711", fi.Mode(), err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, n := counter(t, spec); n != atCheckpoint {
		t.Fatalf("counter moved from %d to %d while checkpointed", atCheckpoint, n)
	}
	consoleBefore := len(readFile(t, spec.ConsoleLog))

	began = time.Now()
	ns2, err := d.Restore(ctx, id, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Restore took %v (netns %s)", time.Since(began), ns2)
	logGaps(t, filepath.Join(cfg.Root, "bundles", id, "criu/restore.log"))
	st = state(t, d, id)
	if st.Status != runtime.Running {
		t.Fatalf("after Restore: %+v", st)
	}
	if got, err := os.Readlink(ns2); err != nil || got == hostNS {
		t.Fatalf("Restore's netns %s = %q, %v", ns2, got, err)
	}
	if again, err := d.Restore(ctx, id, dir); err != nil || again != ns2 {
		t.Fatalf("Restore again = %q, %v; want %q", again, err, ns2)
	}
	pid, n := awaitCounter(t, spec, atCheckpoint+1)
	if n > atCheckpoint+20 {
		t.Fatalf("counter at %d soon after restore, checkpointed at %d", n, atCheckpoint)
	}
	if pid != counterPid {
		t.Fatalf("counting shell is PID %d inside after restore, was %d", pid, counterPid)
	}
	// The cgroups runc made again are delegated again (the createRuntime
	// hook runs at restore too).
	procs := filepath.Join("/sys/fs/cgroup/memory", cgroupParent, id, "cgroup.procs")
	if fi, err := os.Stat(procs); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uidBase {
		t.Errorf("%s after restore: %v, want it owned by instance root %d", procs, err, uidBase)
	}
	pid, n = awaitCounter(t, spec, atCheckpoint+12)
	t.Logf("counter: %d at checkpoint, %d after restore, same PID %d inside", atCheckpoint, n, pid)
	if sum := sha256File(t, fmt.Sprintf("/proc/%d/root/run/blob", st.Pid)); sum != blobSum {
		t.Fatalf("blob sha256 after restore %s, before %s", sum, blobSum)
	}
	// The console pipe is pumped again.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(readFile(t, spec.ConsoleLog)[consoleBefore:], "tick ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console output after restore: %q", readFile(t, spec.ConsoleLog)[consoleBefore:])
		}
	}

	// Again: a restored instance checkpoints and restores too.
	dir2 := imageDir(t)
	began = time.Now()
	if err := d.Checkpoint(ctx, id, dir2); err != nil {
		t.Fatal(err)
	}
	t.Logf("second Checkpoint took %v", time.Since(began))
	_, atCheckpoint = counter(t, spec)
	// The runtime's instance deleted and made again (a host restart, say):
	// the images alone bring it back.
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	if _, err := d.Restore(ctx, id, dir2); err != nil {
		t.Fatal(err)
	}
	t.Logf("second Restore took %v", time.Since(began))
	if pid, _ = awaitCounter(t, spec, atCheckpoint+2); pid != counterPid {
		t.Fatalf("counting shell is PID %d after the second restore, was %d", pid, counterPid)
	}

	if err := d.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := state(t, d, id); st.Status != runtime.Stopped || st.ExitCode != 0 {
		t.Fatalf("after Stop: %+v, want stopped with 0 (init's TERM trap)", st)
	}
	// Start after a hibernation boots afresh.
	os.Remove(filepath.Join(spec.RootFS, "tmp/counter"))
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, n := awaitCounter(t, spec, 1); n > 50 {
		t.Fatalf("counter %d after a fresh start", n)
	}
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	assertNoLeftovers(t, cfg)
}

// TestHibernatablePrepared: a prepared instance stops, starts and deletes
// as any other; Start without Prepare prepares first.
func TestHibernatablePrepared(t *testing.T) {
	d, _ := newHibernator(t)
	ctx := context.Background()
	spec := hibernatableSpec(t)
	id := spec.ID
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// A restore that fails (no images) leaves it stopped, and it boots.
	empty := filepath.Join(t.TempDir(), "img")
	mkdir(t, empty, 0o700)
	if _, err := d.Restore(ctx, id, empty); err == nil {
		t.Fatal("Restore from an empty directory succeeded")
	} else {
		t.Logf("Restore from an empty directory (as wanted): %v", err)
	}
	if st := state(t, d, id); st.Status != runtime.Stopped {
		t.Fatalf("after a failed Restore: %+v", st)
	}
	if _, err := d.Prepare(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if st := state(t, d, id); st.Status != runtime.Stopped {
		t.Fatalf("prepared, then stopped: %+v", st)
	}
	if err := d.Checkpoint(ctx, id, filepath.Join(t.TempDir(), "img")); err == nil {
		t.Fatal("Checkpoint of a stopped instance succeeded")
	}
	if err := d.Start(ctx, id); err != nil { // no Prepare: Start prepares
		t.Fatal(err)
	}
	awaitCounter(t, spec, 2)
	if st := state(t, d, id); st.Status != runtime.Running {
		t.Fatalf("started: %+v", st)
	}
	if _, err := d.Prepare(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Prepared, then deleted.
	spec2 := hibernatableSpec(t)
	if err := d.Create(ctx, spec2); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prepare(ctx, spec2.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, spec2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.State(ctx, spec2.ID); err == nil {
		t.Fatal("deleted instance still observed")
	}
}

// TestNotHibernatable: an ordinary instance cannot be prepared or
// checkpointed, and a Hibernatable one cannot join a namespace.
func TestNotHibernatable(t *testing.T) {
	d, _ := newHibernator(t)
	ctx := context.Background()
	path, uid := newRootFS(t)
	spec := runtimetest.NewSpec(t, path, uid)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prepare(ctx, spec.ID); err == nil {
		t.Fatal("Prepare of an instance that is not Hibernatable succeeded")
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.Checkpoint(ctx, spec.ID, filepath.Join(t.TempDir(), "img")); err == nil {
		t.Fatal("Checkpoint of an instance that is not Hibernatable succeeded")
	}
	if st := state(t, d, spec.ID); st.Status != runtime.Running {
		t.Fatalf("after a refused Checkpoint: %+v", st)
	}
	bad := runtimetest.NewSpec(t, path, uid)
	bad.Hibernatable, bad.NetNS = true, "/run/netns/x"
	if err := d.Create(ctx, bad); err == nil {
		t.Fatal("Create of a Hibernatable instance with a NetNS succeeded")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// du sums the regular files in dir and names the largest.
func du(dir string) string {
	var n, top int64
	var topName string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
			if fi.Size() > top {
				top, topName = fi.Size(), fi.Name()
			}
		}
		return nil
	})
	return fmt.Sprintf("%d MiB (largest %s, %d MiB)", n>>20, topName, top>>20)
}

// logGaps logs the slowest steps of a CRIU log (lines "(SS.ssssss) …"):
// the three lines that came longest after the one before.
func logGaps(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", path, err)
		return
	}
	type gap struct {
		d          float64
		from, line string
	}
	var gaps []gap
	prev, last, prevLine := -1.0, 0.0, ""
	for _, l := range strings.Split(string(b), "\n") {
		var ts float64
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "(%f)", &ts); err != nil {
			continue
		}
		if prev >= 0 {
			gaps = append(gaps, gap{ts - prev, prevLine, l})
		}
		prev, last, prevLine = ts, ts, l
	}
	slices.SortFunc(gaps, func(a, b gap) int { return cmp.Compare(b.d, a.d) })
	t.Logf("%s: %.3f s in all; slowest steps:", filepath.Base(path), last)
	for _, g := range gaps[:min(3, len(gaps))] {
		t.Logf("  +%.3f s between %s and %s", g.d, strings.TrimSpace(g.from), strings.TrimSpace(g.line))
	}
}

// checkHibernatableConfig checks the OCI config of a Hibernatable run: a
// network namespace runc makes, a plain sysfs, no /dev/console bind, no
// seccomp listener.
func checkHibernatableConfig(t *testing.T, path string) {
	t.Helper()
	var c specs.Spec
	if err := json.Unmarshal([]byte(readFile(t, path)), &c); err != nil {
		t.Fatal(err)
	}
	for _, ns := range c.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
	}
	for _, m := range c.Mounts {
		if m.Destination == "/dev/console" || m.Destination == "/sys" && m.Type != "sysfs" {
			t.Errorf("mount %+v", m)
		}
	}
	if c.Linux.Seccomp == nil || c.Linux.Seccomp.ListenerPath != "" {
		t.Errorf("seccomp %+v: want the loop rules, no listener", c.Linux.Seccomp)
	}
}

// TestHibernatablePreparedAttach: a device attached between Prepare and
// Start (the agent attaches volumes then) is there when PID 1 runs.
func TestHibernatablePreparedAttach(t *testing.T) {
	d, _ := newHibernator(t)
	requireLoop(t)
	ctx := context.Background()
	spec := hibernatableSpec(t)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prepare(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	dev := newLoop(t, "/dev/sdf", 32)
	if err := d.AttachDevice(ctx, spec.ID, dev); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if out := mustExec(t, d, spec.ID, "test -b /dev/sdf && head -c 512 /dev/sdf | wc -c"); out != "512" {
		t.Fatalf("reading /dev/sdf inside: %q", out)
	}
	if err := d.DetachDevice(ctx, spec.ID, "/dev/sdf", false); err != nil {
		t.Fatal(err)
	}
}

// imageDir names a checkpoint directory (not made) in a root-only one.
func imageDir(t *testing.T) string {
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(parent, "image")
}
