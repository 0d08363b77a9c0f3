package topology

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"nubo/internal/store"
	"nubo/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func layout(racks int) Layout {
	return Layout{Zones: []string{"us-east-1a", "us-east-1b"}, Racks: racks, HostsPerRack: 2, VCPUs: 8, MemoryMiB: 1024}
}

// TestRegister: the same layout finds the same hosts (failures kept); a
// smaller one deletes empty hosts and retires busy ones.
func TestRegister(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	hosts, err := Register(ctx, st, "us-east-1", "m1", layout(3))
	if err != nil || len(hosts) != 12 {
		t.Fatalf("%d hosts, %v", len(hosts), err)
	}
	if _, err := Fail(ctx, st, Selector{Zone: "us-east-1a", Rack: "r02"}, "power"); err != nil {
		t.Fatal(err)
	}
	busy := hosts[len(hosts)-1] // us-east-1b r03
	if err := st.Apply(ctx, store.Op{Key: AllocationKey(busy.ID), Value: Allocation{Instances: map[string]Usage{"i-1": {VCPUs: 1}}}, ModRev: -1}); err != nil {
		t.Fatal(err)
	}
	again, err := Register(ctx, st, "us-east-1", "m1", layout(3))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i, h := range again {
		if h.ID != hosts[i].ID {
			t.Fatalf("host %d is %s, was %s", i, h.ID, hosts[i].ID)
		}
		if h.Failed != nil {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("%d failed hosts after re-registering, want rack r02's 2", failed)
	}
	if _, err := Register(ctx, st, "us-east-1", "m1", layout(2)); err != nil {
		t.Fatal(err)
	}
	v, err := Read(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Hosts) != 9 { // 8 in the layout, and the busy one retired
		t.Fatalf("%d hosts, want 9", len(v.Hosts))
	}
	if h, _ := v.Host(busy.ID); !h.Retired || h.Up(true) {
		t.Fatalf("busy host left the layout but is %+v", h)
	}
}

// TestLive: a machine's hosts are up while it keeps its lease.
func TestLive(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	if _, err := Register(ctx, st, "us-east-1", "m1", layout(1)); err != nil {
		t.Fatal(err)
	}
	stop, err := Live(ctx, st, "m1", 5*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := Read(ctx, st); !v.Live["m1"] || !v.Hosts[0].Up(v.Live["m1"]) {
		t.Fatalf("m1 not live: %+v", v.Live)
	}
	stop()
	if v, _ := Read(ctx, st); v.Live["m1"] {
		t.Fatal("m1 still live after a clean stop")
	}
}

// TestTakeChecks: a launch's writes fail if the allocation or the host
// changed since the view was read.
func TestTakeChecks(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	hosts, err := Register(ctx, st, "us-east-1", "m1", layout(1))
	if err != nil {
		t.Fatal(err)
	}
	h := hosts[0].ID
	v1, _ := Read(ctx, st)
	v2, _ := Read(ctx, st)
	if err := st.Apply(ctx, v1.Take([]string{"i-1"}, []string{h}, []Usage{{VCPUs: 1}})...); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, v2.Take([]string{"i-2"}, []string{h}, []Usage{{VCPUs: 1}})...); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second take from a stale view: %v, want a conflict", err)
	}
	v3, _ := Read(ctx, st)
	if _, err := Fail(ctx, st, Selector{Host: h}, "disk"); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, v3.Take([]string{"i-3"}, []string{h}, []Usage{{VCPUs: 1}})...); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("take on a host failed since the view: %v, want a conflict", err)
	}
	v4, _ := Read(ctx, st)
	if got := v4.Alloc[h].Instances; len(got) != 1 {
		t.Fatalf("allocation %v, want i-1 alone", got)
	}
	if op, ok := v4.Drop(h, "i-1"); !ok || st.Apply(ctx, op) != nil {
		t.Fatal("drop failed")
	}
}
