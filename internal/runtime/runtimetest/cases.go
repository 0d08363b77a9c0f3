package runtimetest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"nubo/internal/runtime"
)

const grace = 5 * time.Second

// created makes a driver and creates an instance, deleted at cleanup.
func (s *suite) created(t *testing.T) (runtime.Driver, runtime.Spec) {
	t.Helper()
	d := s.newDriver(t)
	path, uid := s.newRootFS(t)
	spec := NewSpec(t, path, uid)
	if err := d.Create(context.Background(), spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Delete(context.Background(), spec.ID); err != nil {
			t.Errorf("cleanup: Delete: %v", err)
		}
	})
	return d, spec
}

// started creates and starts an instance and checks it runs.
func (s *suite) started(t *testing.T) (runtime.Driver, runtime.Spec, runtime.State) {
	t.Helper()
	d, spec := s.created(t)
	if err := d.Start(context.Background(), spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return d, spec, s.mustRun(t, d, spec.ID)
}

func (s *suite) mustRun(t *testing.T, d runtime.Driver, id string) runtime.State {
	t.Helper()
	st := mustState(t, d, id)
	if st.Status != runtime.Running || st.Pid <= 0 {
		t.Fatalf("State after Start = %+v, want running with a PID", st)
	}
	return st
}

func mustState(t *testing.T, d runtime.Driver, id string) runtime.State {
	t.Helper()
	st, err := d.State(context.Background(), id)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

func (s *suite) testLifecycle(t *testing.T) {
	ctx := context.Background()
	d, spec := s.created(t)
	if st := mustState(t, d, spec.ID); st.Status != runtime.Created {
		t.Fatalf("State after Create = %+v, want created", st)
	}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create again: %v", err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := s.mustRun(t, d, spec.ID)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create while running: %v", err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if again := s.mustRun(t, d, spec.ID); again.Pid != st.Pid {
		t.Fatalf("Start of a running instance changed PID 1: %d → %d", st.Pid, again.Pid)
	}
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := mustState(t, d, spec.ID); st.Status != runtime.Stopped || st.Pid != 0 {
		t.Fatalf("State after Stop = %+v, want stopped without a PID", st)
	}
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatalf("Stop again: %v", err)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.State(ctx, spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("State after Delete: err = %v, want ErrNotFound", err)
	}
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
}

func (s *suite) testStopThenStart(t *testing.T) {
	ctx := context.Background()
	d, spec, _ := s.started(t)
	if s.exec != nil {
		s.exec(t, d, spec.ID, "echo kept > /root/marker")
	}
	for i := range 2 {
		if err := d.Stop(ctx, spec.ID, grace); err != nil {
			t.Fatalf("Stop %d: %v", i, err)
		}
		if st := mustState(t, d, spec.ID); st.Status != runtime.Stopped {
			t.Fatalf("State after Stop %d = %+v", i, st)
		}
		if err := d.Start(ctx, spec.ID); err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
		s.mustRun(t, d, spec.ID)
	}
	if s.exec == nil {
		t.Log("no exec: not checking that files survive a stop and start")
		return
	}
	if got := strings.TrimSpace(s.exec(t, d, spec.ID, "cat /root/marker")); got != "kept" {
		t.Fatalf("file written before the stop reads %q after the start", got)
	}
}

func (s *suite) testPID1Exit(t *testing.T) {
	ctx := context.Background()
	d, spec, _ := s.started(t)
	s.exitPID1(t, d, spec.ID, 7)
	st := Await(t, d, spec.ID, s.timeout, func(st runtime.State) bool { return st.Status == runtime.Stopped })
	if st.ExitCode != 7 || st.Pid != 0 {
		t.Fatalf("State after PID 1 exited 7 = %+v", st)
	}
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatalf("Stop after exit: %v", err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start after exit: %v", err)
	}
	s.mustRun(t, d, spec.ID)
	s.exitPID1(t, d, spec.ID, 0)
	st = Await(t, d, spec.ID, s.timeout, func(st runtime.State) bool { return st.Status == runtime.Stopped })
	if st.ExitCode != 0 {
		t.Fatalf("State after PID 1 exited 0 = %+v", st)
	}
}

func (s *suite) exitPID1(t *testing.T, d runtime.Driver, id string, code int) {
	t.Helper()
	if s.exit != nil {
		s.exit(t, d, id, code)
		return
	}
	e, ok := d.(Exiter)
	if !ok {
		t.Fatalf("driver %T cannot make PID 1 exit: pass WithExit", d)
	}
	if err := e.Exit(id, code); err != nil {
		t.Fatalf("Exit(%s, %d): %v", id, code, err)
	}
}

func (s *suite) testStopCreated(t *testing.T) {
	d, spec := s.created(t)
	if err := d.Stop(context.Background(), spec.ID, grace); err != nil {
		t.Fatalf("Stop of a created instance: %v", err)
	}
	if st := mustState(t, d, spec.ID); st.Status != runtime.Created {
		t.Fatalf("State after Stop of a created instance = %+v, want created", st)
	}
}

// testCreateChangedSpec: Create of an existing ID with another spec (an
// instance type changed while stopped) succeeds; the next Start uses it.
func (s *suite) testCreateChangedSpec(t *testing.T) {
	ctx := context.Background()
	d, spec, _ := s.started(t)
	if err := d.Stop(ctx, spec.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	spec.MemoryMiB *= 2
	spec.VCPUs++
	if err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create with a changed spec: %v", err)
	}
	if st := mustState(t, d, spec.ID); st.Status != runtime.Stopped {
		t.Fatalf("State after re-Create = %+v, want still stopped", st)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.mustRun(t, d, spec.ID)
	if s.exec != nil {
		// Linux's own view of the instance's memory limit, where a
		// driver uses cgroup v1 (runc here) or v2.
		out := s.exec(t, d, spec.ID, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
		if want := strconv.FormatInt(spec.MemoryMiB<<20, 10); strings.TrimSpace(out) != want {
			t.Fatalf("memory limit after re-Create = %q, want %s", out, want)
		}
	}
}

func (s *suite) testDeleteRunning(t *testing.T) {
	ctx := context.Background()
	d, spec, _ := s.started(t)
	if err := d.Delete(ctx, spec.ID); err != nil {
		t.Fatalf("Delete of a running instance: %v", err)
	}
	if _, err := d.State(ctx, spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("State after Delete: err = %v, want ErrNotFound", err)
	}
	ids, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if slices.Contains(ids, spec.ID) {
		t.Fatalf("List after Delete = %v, still has %s", ids, spec.ID)
	}
}

func (s *suite) testAbsent(t *testing.T) {
	ctx := context.Background()
	d := s.newDriver(t)
	id := NewID()
	if err := d.Delete(ctx, id); err != nil {
		t.Fatalf("Delete of an absent instance: %v", err)
	}
	if _, err := d.State(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("State of an absent instance: err = %v, want ErrNotFound", err)
	}
	if err := d.Start(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Start of an absent instance: err = %v, want ErrNotFound", err)
	}
	if err := d.Stop(ctx, id, grace); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Stop of an absent instance: err = %v, want ErrNotFound", err)
	}
}

func (s *suite) testList(t *testing.T) {
	ctx := context.Background()
	d := s.newDriver(t)
	path, uid := s.newRootFS(t)
	ids, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var want []string
	for range 2 {
		spec := NewSpec(t, path, uid)
		if err := d.Create(ctx, spec); err != nil {
			t.Fatalf("Create: %v", err)
		}
		t.Cleanup(func() { d.Delete(context.Background(), spec.ID) })
		want = append(want, spec.ID)
	}
	if err := d.Start(ctx, want[1]); err != nil {
		t.Fatalf("Start: %v", err)
	}
	got, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, id := range want {
		if !slices.Contains(got, id) {
			t.Fatalf("List = %v, missing %s", got, id)
		}
	}
	if len(got) != len(ids)+2 {
		t.Fatalf("List = %v, want %v plus %v", got, ids, want)
	}
}

func (s *suite) testInvalidSpec(t *testing.T) {
	d := s.newDriver(t)
	path, uid := s.newRootFS(t)
	bad := NewSpec(t, path, uid)
	bad.Init = nil
	if err := d.Create(context.Background(), bad); err == nil {
		d.Delete(context.Background(), bad.ID)
		t.Fatal("Create of a spec without init succeeded")
	}
}
