package runc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
)

const busybox = "/bin/busybox" // Debian's busybox-static

// requireHost skips tests that need what runc containers need here.
func requireHost(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs runc containers")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (Debian package util-linux)")
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("needs a static busybox at /bin/busybox (Debian package busybox-static)")
	}
}

// driverConfig is a test driver's config over a fresh root.
func driverConfig(t *testing.T) runc.Config {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return runc.Config{
		Root: filepath.Join(t.TempDir(), "runtime"),
		// atexit_sleep_ms=0: a race-enabled shim would otherwise linger 1 s.
		Shim:         []string{"/usr/bin/env", shimEnv + "=1", "GORACE=atexit_sleep_ms=0", exe},
		CgroupParent: cgroupParent,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
}

// newDriver returns a driver whose instances are all deleted, and checked
// gone with their cgroups, when the test ends, even if it fails.
func newDriver(t *testing.T) runtime.Driver {
	t.Helper()
	requireHost(t)
	return newDriverWith(t, driverConfig(t))
}

func newDriverWith(t *testing.T, cfg runc.Config) *runc.Driver {
	t.Helper()
	d, err := runc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		ids, err := d.List(ctx)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, id := range ids {
			if t.Failed() {
				dumpLogs(t, cfg.Root, id)
			}
			if err := d.Delete(ctx, id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			assertNoCgroups(t, id)
		}
	})
	return d
}

// dumpLogs logs what the shim, runc and the console said, for a failed test.
func dumpLogs(t *testing.T, root, id string) {
	t.Helper()
	bundle := filepath.Join(root, "bundles", id)
	var spec runtime.Spec
	if b, err := os.ReadFile(filepath.Join(bundle, "spec.json")); err == nil {
		json.Unmarshal(b, &spec)
	}
	for _, f := range []string{filepath.Join(bundle, "shim.log"), filepath.Join(bundle, "runc.log"), spec.ConsoleLog} {
		if b, err := os.ReadFile(f); err == nil {
			t.Logf("%s:\n%s", f, b)
		}
	}
}

// assertNoCgroups checks that no hierarchy still has the instance's cgroup.
func assertNoCgroups(t *testing.T, id string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", cgroupParent, id))
	if len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
}

// pid1 returns the host PID of a running instance's PID 1.
func pid1(t *testing.T, d runtime.Driver, id string) int {
	t.Helper()
	st, err := d.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != runtime.Running {
		t.Fatalf("%s is %s, not running", id, st.Status)
	}
	return st.Pid
}

// execIn runs a busybox shell script inside a running instance: a host
// shell joins the instance's cgroups, then nsenter enters all its
// namespaces (so limits apply to the script too).
func execIn(t *testing.T, d runtime.Driver, id, script string) (string, error) {
	t.Helper()
	pid := pid1(t, d, id)
	join := fmt.Sprintf(`for d in /sys/fs/cgroup/*%s/%s; do [ -d "$d" ] && echo $$ > "$d/cgroup.procs"; done; `, cgroupParent, id)
	cmd := exec.Command("/bin/sh", "-c", join+`exec nsenter --target "$0" --all /bin/sh -c "$1"`, strconv.Itoa(pid), script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustExec(t *testing.T, d runtime.Driver, id, script string) string {
	t.Helper()
	out, err := execIn(t, d, id, script)
	if err != nil {
		t.Fatalf("in %s: %q: %v: %s", id, script, err, out)
	}
	return strings.TrimSpace(out)
}

// exitPID1 makes the test init exit with code, as a poweroff inside would.
func exitPID1(t *testing.T, d runtime.Driver, id string, code int) {
	t.Helper()
	path := rootFSOf(t, d, id)
	writeFile(t, filepath.Join(path, "exit-code"), strconv.Itoa(code)+"\n", 0o644)
	if err := syscall.Kill(pid1(t, d, id), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
}

// rootFSOf reads the instance's root filesystem from its running PID 1.
func rootFSOf(t *testing.T, d runtime.Driver, id string) string {
	t.Helper()
	// /proc/<pid>/root is the instance's root as the host sees it.
	return fmt.Sprintf("/proc/%d/root", pid1(t, d, id))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
