package runc_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runc"
	"nubo/internal/runtime/runtimetest"
)

// TestCrashes kills the processes that supervise an instance and checks
// that every method still does the right thing afterwards.
func TestCrashes(t *testing.T) {
	requireHost(t)
	for _, tc := range []struct {
		name           string
		shim, runc     bool
		wantExitOnStop int // what State reports after Stop
	}{
		{"ShimKilled", true, false, -1}, // runc lives on, but nobody records the exit
		{"RuncKilled", false, true, 0},  // PID 1 becomes the shim's child
		{"BothKilled", true, true, -1},  // PID 1 is orphaned to the host's init
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := driverConfig(t)
			d := newDriverWith(t, cfg)
			path, uid := newRootFS(t)
			spec := runtimetest.NewSpec(t, path, uid)
			if err := d.Create(ctx, spec); err != nil {
				t.Fatal(err)
			}
			if err := d.Start(ctx, spec.ID); err != nil {
				t.Fatal(err)
			}
			pid := pid1(t, d, spec.ID)
			shim := shimPid(t, cfg, spec.ID)
			runcPid := childOf(t, shim)
			if tc.shim {
				syscall.Kill(shim, syscall.SIGKILL)
			}
			if tc.runc {
				syscall.Kill(runcPid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
			if got := pid1(t, d, spec.ID); got != pid {
				t.Fatalf("PID 1 changed from %d to %d", pid, got)
			}
			if got := mustExec(t, d, spec.ID, "echo alive"); got != "alive" {
				t.Fatalf("exec: %q", got)
			}
			if err := d.Start(ctx, spec.ID); err != nil {
				t.Fatalf("Start of the running instance: %v", err)
			}
			if err := d.Stop(ctx, spec.ID, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			st := runtimetest.Await(t, d, spec.ID, 5*time.Second, func(st runtime.State) bool { return st.Status == runtime.Stopped })
			if st.ExitCode != tc.wantExitOnStop {
				t.Fatalf("after Stop: %+v, want exit code %d", st, tc.wantExitOnStop)
			}
			if err := d.Start(ctx, spec.ID); err != nil {
				t.Fatalf("Start after the crash: %v", err)
			}
			pid1(t, d, spec.ID)
			if err := d.Stop(ctx, spec.ID, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if st, _ := d.State(ctx, spec.ID); st.Status != runtime.Stopped || st.ExitCode != 0 {
				t.Fatalf("after the second Stop: %+v, want stopped with exit 0", st)
			}
		})
	}
}

// TestDeleteLeftovers deletes an instance whose bundle is gone but whose
// runc record and cgroups remain, as a crash in the middle of Delete or a
// lost data directory would leave it.
func TestDeleteLeftovers(t *testing.T) {
	requireHost(t)
	ctx := context.Background()
	cfg := driverConfig(t)
	d := newDriverWith(t, cfg)
	path, uid := newRootFS(t)
	spec := runtimetest.NewSpec(t, path, uid)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	shim := shimPid(t, cfg, spec.ID)
	syscall.Kill(shim, syscall.SIGKILL)
	if err := os.RemoveAll(filepath.Join(cfg.Root, "bundles", spec.ID)); err != nil {
		t.Fatal(err)
	}
	if st, err := d.State(ctx, spec.ID); err != nil || st.Status != runtime.Running {
		t.Fatalf("without its bundle: State = %+v, %v; want still running", st, err)
	}
	ids, _ := d.List(ctx)
	if len(ids) != 1 || ids[0] != spec.ID {
		t.Fatalf("List = %v, want [%s]", ids, spec.ID)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.State(ctx, spec.ID); err == nil {
		t.Fatal("State after Delete found the instance")
	}
	assertNoCgroups(t, spec.ID)
	if _, err := os.Stat(filepath.Join(cfg.Root, "runc", spec.ID)); !os.IsNotExist(err) {
		t.Fatalf("runc record left after Delete: %v", err)
	}
}

func shimPid(t *testing.T, cfg runc.Config, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.Root, "bundles", id, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var run struct{ Shim struct{ Pid int } }
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatal(err)
	}
	return run.Shim.Pid
}

// childOf returns the only child of pid (the shim's `runc run`).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	var kids []string
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children")
		kids = append(kids, strings.Fields(string(b))...)
	}
	if len(kids) != 1 {
		t.Fatalf("shim %d has children %v, want one (runc)", pid, kids)
	}
	return mustAtoi(t, kids[0])
}
