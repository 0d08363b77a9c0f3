package runc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

// startInstance creates and starts an instance with spec adjusted by edit.
func startInstance(t *testing.T, edit func(*runtime.Spec)) (runtime.Driver, runtime.Spec) {
	t.Helper()
	d := newDriver(t)
	path, uid := newRootFS(t)
	spec := runtimetest.NewSpec(t, path, uid)
	if edit != nil {
		edit(&spec)
	}
	ctx := context.Background()
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	return d, spec
}

// TestIsolation checks what an instance sees of itself and of the host.
func TestIsolation(t *testing.T) {
	requireHost(t)
	d, spec := startInstance(t, func(s *runtime.Spec) {
		s.Hostname = "ip-172-31-5-9"
		s.VCPUs = 1
		s.MemoryMiB = 64
		s.PidsLimit = 32
	})
	id := spec.ID
	pid := pid1(t, d, id)

	t.Run("Console", func(t *testing.T) {
		want := "init up as pid 1 on " + spec.Hostname
		var b []byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, _ = os.ReadFile(spec.ConsoleLog); strings.Contains(string(b), want) {
				return
			}
		}
		t.Fatalf("console log = %q, want %q", b, want)
	})
	t.Run("DevConsole", func(t *testing.T) {
		// What systemd and its units write to /dev/console reaches the
		// console log too, as written (no CR added).
		mustExec(t, d, id, "echo written to /dev/console > /dev/console")
		var b []byte
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, _ = os.ReadFile(spec.ConsoleLog); strings.Contains(string(b), "written to /dev/console\n") {
				return
			}
		}
		t.Fatalf("console log = %q, want what was written to /dev/console", b)
	})
	t.Run("Hostname", func(t *testing.T) {
		if got := mustExec(t, d, id, "hostname"); got != spec.Hostname {
			t.Fatalf("hostname inside = %q, want %q", got, spec.Hostname)
		}
	})
	t.Run("PID1IsInit", func(t *testing.T) {
		got := mustExec(t, d, id, "tr '\\0' ' ' < /proc/1/cmdline")
		if !strings.Contains(got, "/sbin/init") {
			t.Fatalf("PID 1 inside runs %q, want /sbin/init", got)
		}
		if n := mustExec(t, d, id, "ls -d /proc/[0-9]* | wc -l"); n == "" || mustAtoi(t, n) > 10 {
			t.Fatalf("instance sees %s processes: not its own PID namespace", n)
		}
	})
	t.Run("UserNamespace", func(t *testing.T) {
		m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(m)); len(f) != 3 || f[0] != "0" || f[1] != strconv.Itoa(uidBase) || f[2] != "65536" {
			t.Fatalf("uid_map = %q, want 0 %d 65536", m, uidBase)
		}
		if got := mustExec(t, d, id, "id -u; touch /root/owned"); got != "0" {
			t.Fatalf("id -u inside = %q", got)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(spec.RootFS, "root/owned"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != uidBase || st.Gid != uidBase {
			t.Fatalf("file made by instance root is owned by %d:%d on the host, want %d", st.Uid, st.Gid, uidBase)
		}
	})
	t.Run("NoSysResource", func(t *testing.T) {
		status := mustExec(t, d, id, "grep CapEff /proc/1/status")
		eff, err := strconv.ParseUint(strings.Fields(status)[1], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		const sysResource, sysAdmin = 24, 21
		if eff&(1<<sysResource) != 0 || eff&(1<<sysAdmin) == 0 {
			t.Fatalf("PID 1 capabilities %x: want CAP_SYS_ADMIN (in its user namespace), never CAP_SYS_RESOURCE", eff)
		}
	})
	t.Run("CPUQuota", func(t *testing.T) {
		quota := mustExec(t, d, id, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us")
		if quota != fmt.Sprintf("%d\n100000", spec.VCPUs*100000) {
			t.Fatalf("cpu quota/period inside = %q, want %d/100000", quota, spec.VCPUs*100000)
		}
		t.Logf("nproc inside = %s (CPU affinity is not limited, only the CFS quota)", mustExec(t, d, id, "nproc"))
	})
	t.Run("MemoryLimit", func(t *testing.T) {
		limit := mustExec(t, d, id, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		want := strconv.FormatInt(spec.MemoryMiB<<20, 10)
		if limit != want+"\n"+want {
			t.Fatalf("memory and memory+swap limits inside = %q, want %s twice", limit, want)
		}
		// tail keeps a line that never ends in memory: 200 MiB > 64 MiB.
		out := mustExec(t, d, id, "head -c 209715200 /dev/zero | tail > /dev/null; echo status=$?")
		if !strings.HasSuffix(out, "status=137") {
			t.Fatalf("allocating past the limit: %q, want the allocator OOM-killed (137)", out)
		}
		oom, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", cgroupParent, id, "memory.oom_control"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(oom), "oom_kill 1") {
			t.Fatalf("memory.oom_control = %q, want one OOM kill", oom)
		}
		if got := pid1(t, d, id); got != pid {
			t.Fatalf("PID 1 changed after the OOM kill: %d → %d", pid, got)
		}
	})
	t.Run("PidsLimit", func(t *testing.T) {
		if got := mustExec(t, d, id, "cat /sys/fs/cgroup/pids/pids.max"); got != strconv.FormatInt(spec.PidsLimit, 10) {
			t.Fatalf("pids.max inside = %q, want %d", got, spec.PidsLimit)
		}
		// The shell gives up at its first failed fork; the sleeps it made
		// are killed from the host, as the limit leaves no room to exec.
		out, _ := execIn(t, d, id, `for i in $(seq 40); do sleep 30 </dev/null >/dev/null 2>&1 & done; echo spawned all`)
		killSleepers(t, id)
		if !strings.Contains(out, "can't fork") {
			t.Fatalf("40 processes under a limit of %d: %q, want fork failures", spec.PidsLimit, out)
		}
	})
}

// killSleepers kills the instance's `sleep 30` processes.
func killSleepers(t *testing.T, id string) {
	t.Helper()
	procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", cgroupParent, id, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(procs)) {
		cmdline, _ := os.ReadFile("/proc/" + f + "/cmdline")
		if string(cmdline) == "sleep\x0030\x00" {
			syscall.Kill(mustAtoi(t, f), syscall.SIGKILL)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRebootInside: reboot(2) inside an instance ends its PID namespace, and
// the kernel reports PID 1 as killed by SIGHUP (reboot) or SIGINT (halt,
// poweroff), so State's ExitCode is 129 or 130.
func TestRebootInside(t *testing.T) {
	requireHost(t)
	for cmd, want := range map[string]int{"reboot -f": 129, "poweroff -f": 130} {
		t.Run(strings.Fields(cmd)[0], func(t *testing.T) {
			d, spec := startInstance(t, nil)
			execIn(t, d, spec.ID, cmd) // killed with the PID namespace
			st := runtimetest.Await(t, d, spec.ID, 10*time.Second, func(st runtime.State) bool { return st.Status == runtime.Stopped })
			if st.ExitCode != want {
				t.Fatalf("after %s inside: %+v, want exit code %d", cmd, st, want)
			}
		})
	}
}
