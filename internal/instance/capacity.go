package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"nubo/internal/store"
)

// Host is one machine that runs instances, and what it offers.
type Host struct {
	Name      string `json:"name"`
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int64  `json:"memoryMiB"`
}

// Usage is what one instance holds of a host while it runs.
type Usage struct {
	VCPUs     int   `json:"vcpus"`
	MemoryMiB int64 `json:"memoryMiB"`
}

// Allocation is what a host has handed out, by instance ID. An instance holds
// its share from launch (or start) until it is asked to stop or terminate.
type Allocation struct {
	Instances map[string]Usage `json:"instances"`
}

// Sum is the total held.
func (a Allocation) Sum() Usage {
	var u Usage
	for _, x := range a.Instances {
		u.VCPUs += x.VCPUs
		u.MemoryMiB += x.MemoryMiB
	}
	return u
}

// AllocationKey is where a host's allocation lives.
func AllocationKey(host string) string { return store.Root + "alloc/" + host }

// HostKey is where a host's record lives.
func HostKey(host string) string { return store.Root + "hosts/" + host }

// Fits reports whether adding want to the allocation stays within h.
func (h Host) Fits(a Allocation, want []Usage) bool {
	u := a.Sum()
	for _, w := range want {
		u.VCPUs += w.VCPUs
		u.MemoryMiB += w.MemoryMiB
	}
	return u.VCPUs <= h.VCPUs && u.MemoryMiB <= h.MemoryMiB
}

// Release removes ids from a host's allocation (idempotent).
func Release(ctx context.Context, st *store.Store, host string, ids ...string) error {
	return ReleaseIf(ctx, st, host, store.Op{}, ids...)
}

// ReleaseIf is Release under a condition (an Op with Check set, e.g. "the
// instance record is still the one I read"); a zero cond is no condition.
// A failed condition releases nothing and is not an error: whoever changed
// the record decided about its capacity.
func ReleaseIf(ctx context.Context, st *store.Store, host string, cond store.Op, ids ...string) error {
	for {
		var a Allocation
		rev, err := st.GetRev(ctx, AllocationKey(host), &a)
		if err != nil {
			return err
		}
		changed := false
		for _, id := range ids {
			if _, ok := a.Instances[id]; ok {
				delete(a.Instances, id)
				changed = true
			}
		}
		if !changed {
			return nil
		}
		ops := []store.Op{{Key: AllocationKey(host), Value: a, ModRev: rev}}
		if cond.Key != "" {
			var cur json.RawMessage
			if r, err := st.GetRev(ctx, cond.Key, &cur); err != nil {
				return err
			} else if r != cond.ModRev {
				return nil
			}
			ops = append(ops, cond)
		}
		err = st.Apply(ctx, ops...)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("releasing capacity on %s: %w", host, err)
		}
		return nil
	}
}
