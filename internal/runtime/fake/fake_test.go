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
