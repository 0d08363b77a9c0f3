package runc_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"nubo/internal/runtime"
	"nubo/internal/runtime/runtimetest"
)

// TestStartLatency measures, over a few start/stop cycles of the busybox
// instance, how long after Start is called State reports Running, and how
// long until PID 1 actually runs (the init script has written /tmp/up).
// Run with -v to see the medians.
func TestStartLatency(t *testing.T) {
	requireHost(t)
	const runs = 10
	ctx := context.Background()
	d := newDriver(t)
	path, uid := newRootFS(t)
	spec := runtimetest.NewSpec(t, path, uid)
	if err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(path, "tmp/up")
	var toRunning, toInit []time.Duration
	for range runs {
		os.Remove(marker)
		begin := time.Now()
		upc := make(chan time.Duration, 1)
		go func() {
			for {
				if _, err := os.Stat(marker); err == nil {
					upc <- time.Since(begin)
					return
				}
				if time.Since(begin) > 30*time.Second {
					upc <- -1
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		if err := d.Start(ctx, spec.ID); err != nil {
			t.Fatal(err)
		}
		st, err := d.State(ctx, spec.ID)
		if err != nil || st.Status != runtime.Running {
			t.Fatalf("State after Start = %+v, %v", st, err)
		}
		toRunning = append(toRunning, time.Since(begin))
		up := <-upc
		if up < 0 {
			t.Fatal("PID 1 never wrote /tmp/up")
		}
		toInit = append(toInit, up)
		if err := d.Stop(ctx, spec.ID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Start → State running: median %v (min %v, max %v) over %d runs",
		median(toRunning), slices.Min(toRunning), slices.Max(toRunning), runs)
	t.Logf("Start → PID 1 running: median %v (min %v, max %v)",
		median(toInit), slices.Min(toInit), slices.Max(toInit))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
