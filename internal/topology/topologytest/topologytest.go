// Package topologytest gives tests a machine with hosts that take instances.
package topologytest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"nubo/internal/store"
	"nubo/internal/topology"
)

// Serve registers machine's hosts (one per zone unless l says more racks
// or hosts per rack) and keeps the machine live until the test ends.
func Serve(t testing.TB, st *store.Store, region, machine string, l topology.Layout) []topology.Host {
	t.Helper()
	l.Racks, l.HostsPerRack = max(l.Racks, 1), max(l.HostsPerRack, 1)
	if l.MemoryMiB == 0 {
		l.MemoryMiB = 1 << 20
	}
	ctx := context.Background()
	hosts, err := topology.Register(ctx, st, region, machine, l)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := topology.Live(ctx, st, machine, 10*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return hosts
}
