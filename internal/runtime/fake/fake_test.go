package fake_test

import (
	"context"
	"errors"
	"testing"

	"nubo/internal/runtime"
	"nubo/internal/runtime/fake"
	"nubo/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t,
		func(t *testing.T) runtime.Driver { return fake.New() },
		func(t *testing.T) (string, uint32) { return t.TempDir(), 100000 })
}

func TestFail(t *testing.T) {
	ctx := context.Background()
	d := fake.New()
	spec := runtimetest.NewSpec(t, t.TempDir(), 100000)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	d.Fail(fake.OpStart, spec.ID, boom)
	if err := d.Start(ctx, spec.ID); !errors.Is(err, boom) {
		t.Fatalf("Start with injected error: %v", err)
	}
	d.Fail(fake.OpStart, spec.ID, nil)
	if err := d.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start after clearing: %v", err)
	}
	d.Fail(fake.OpState, "", boom)
	if _, err := d.State(ctx, spec.ID); !errors.Is(err, boom) {
		t.Fatalf("State with injected error for any ID: %v", err)
	}
	if got := d.Calls(fake.OpStart); got != 2 {
		t.Fatalf("Calls(Start) = %d, want 2", got)
	}
}

func TestStopExitCodes(t *testing.T) {
	ctx := context.Background()
	d := fake.New()
	spec := runtimetest.NewSpec(t, t.TempDir(), 100000)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ignore bool
		want   int
	}{{false, 0}, {true, 137}} {
		if err := d.Start(ctx, spec.ID); err != nil {
			t.Fatal(err)
		}
		if err := d.IgnoreTerm(spec.ID, tc.ignore); err != nil {
			t.Fatal(err)
		}
		if err := d.Stop(ctx, spec.ID, 1); err != nil {
			t.Fatal(err)
		}
		st, err := d.State(ctx, spec.ID)
		if err != nil || st.Status != runtime.Stopped || st.ExitCode != tc.want {
			t.Fatalf("ignoreTerm=%v: State = %+v, %v; want stopped, exit %d", tc.ignore, st, err, tc.want)
		}
	}
}

func TestHibernate(t *testing.T) {
	ctx := context.Background()
	d := fake.New()
	spec := runtimetest.NewSpec(t, t.TempDir(), 100000)
	spec.Hibernatable = true
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	id := spec.ID
	ns, err := d.Prepare(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := d.State(ctx, id)
	if st.Status != runtime.Created || ns == "" {
		t.Fatalf("prepared: %+v, netns %q", st, ns)
	}
	if err := d.Checkpoint(ctx, id, "/img"); err == nil {
		t.Fatal("Checkpoint of a prepared instance succeeded")
	}
	if err := d.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if again, err := d.Prepare(ctx, id); err != nil || again != ns {
		t.Fatalf("Prepare of the running instance = %q, %v; want %q", again, err, ns)
	}
	boom := errors.New("dump failed")
	d.Fail(fake.OpCheckpoint, id, boom)
	if err := d.Checkpoint(ctx, id, "/img"); !errors.Is(err, boom) {
		t.Fatalf("Checkpoint with injected error: %v", err)
	}
	if st, _ := d.State(ctx, id); st.Status != runtime.Running {
		t.Fatalf("after a failed Checkpoint: %+v", st)
	}
	d.Fail(fake.OpCheckpoint, id, nil)
	if _, err := d.Restore(ctx, id, "/img"); err == nil {
		t.Fatal("Restore of a running instance succeeded")
	}
	if err := d.Checkpoint(ctx, id, "/img"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, id); st.Status != runtime.Stopped || st.ExitCode != 137 {
		t.Fatalf("after Checkpoint: %+v", st)
	}
	if _, err := d.Restore(ctx, id, "/other"); err == nil {
		t.Fatal("Restore of a checkpoint never taken succeeded")
	}
	d.Fail(fake.OpRestore, "", boom)
	if _, err := d.Restore(ctx, id, "/img"); !errors.Is(err, boom) {
		t.Fatalf("Restore with injected error: %v", err)
	}
	d.Fail(fake.OpRestore, "", nil)
	ns2, err := d.Restore(ctx, id, "/img")
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := d.State(ctx, id)
	if st2.Status != runtime.Running || ns2 == ns {
		t.Fatalf("restored: %+v, netns %q (was %q)", st2, ns2, ns)
	}
	if again, err := d.Restore(ctx, id, "/img"); err != nil || again != ns2 {
		t.Fatalf("Restore again = %q, %v", again, err)
	}

	plain := runtimetest.NewSpec(t, t.TempDir(), 100000)
	if err := d.Create(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prepare(ctx, plain.ID); err == nil {
		t.Fatal("Prepare of an instance that is not Hibernatable succeeded")
	}
	d.Start(ctx, plain.ID)
	if err := d.Checkpoint(ctx, plain.ID, "/img"); err == nil {
		t.Fatal("Checkpoint of an instance that is not Hibernatable succeeded")
	}
	bad := runtimetest.NewSpec(t, t.TempDir(), 100000)
	bad.Hibernatable, bad.NetNS = true, "/run/netns/x"
	if err := d.Create(ctx, bad); err == nil {
		t.Fatal("Create of a Hibernatable instance with a NetNS succeeded")
	}
}
