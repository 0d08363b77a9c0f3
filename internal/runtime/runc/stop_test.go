package runc_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

// TestStopIgnoringTerm: a PID 1 that ignores SIGTERM is killed once the
// grace period is over, and State reports 128+SIGKILL.
func TestStopIgnoringTerm(t *testing.T) {
	requireHost(t)
	d, spec := startInstance(t, func(s *runtime.Spec) {
		writeFile(t, filepath.Join(s.RootFS, "ignore-term"), "", 0o644)
	})
	const grace = 500 * time.Millisecond
	begin := time.Now()
	if err := d.Stop(context.Background(), spec.ID, grace); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	st, err := d.State(context.Background(), spec.ID)
	if err != nil || st.Status != runtime.Stopped || st.ExitCode != 137 {
		t.Fatalf("after Stop: State = %+v, %v; want stopped with 137", st, err)
	}
	if took < grace || took > grace+5*time.Second {
		t.Fatalf("Stop took %v with a grace of %v", took, grace)
	}
}

// TestStartFailure: a run that runc cannot start is reported by Start with
// runc's reason, observed as Stopped with an unknown exit code, and can be
// retried once fixed.
func TestStartFailure(t *testing.T) {
	requireHost(t)
	ctx := context.Background()
	d := newDriver(t)
	path, uid := newRootFS(t)
	spec := runtimetest.NewSpec(t, path, uid)
	spec.Init = []string{"/sbin/no-such-init"}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	err := d.Start(ctx, spec.ID)
	if err == nil || !strings.Contains(err.Error(), "no-such-init") {
		t.Fatalf("Start with a missing init: %v, want runc's reason", err)
	}
	t.Logf("Start: %v", err)
	st, err := d.State(ctx, spec.ID)
	if err != nil || st.Status != runtime.Stopped || st.ExitCode != -1 {
		t.Fatalf("after a failed Start: State = %+v, %v; want stopped, exit unknown", st, err)
	}
	spec.Init = []string{"/sbin/init"}
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start after fixing the spec: %v", err)
	}
	pid1(t, d, spec.ID)
}
