package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"nubo/internal/store"
)

// Usage is what one instance holds of a host while it is pending or
// running, and what placement rules need to know of it.
type Usage struct {
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int64  `json:"memoryMiB"`
	Account   string `json:"account,omitempty"`
	Group     string `json:"group,omitempty"` // placement group ID
	Partition int    `json:"partition,omitempty"`
	Dedicated bool   `json:"dedicated,omitempty"`
}

// Allocation is what a host has handed out, by instance ID. An instance
// holds its share from launch (or start) until it is asked to stop or
// terminate.
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
