package secgroup

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"nubo/internal/resource"
	"nubo/internal/store"
)

// The keys of a group: its record, its name in its VPC, and one index entry
// per rule. Whoever creates or deletes a group (this package, or package vpc
// for a VPC's default group) writes all of them in one transaction through
// CreateOps and DeleteOps, so that both agree.

// CreateOps are the writes that create g: they fail (store.ErrConflict) if
// any key exists, such as the name in the VPC.
func CreateOps(s resource.Scope, g Group) []store.Op {
	ops := []store.Op{
		{Key: resource.Key(s, Kind, g.ID), Value: g},
		{Key: NameKey(s, g.VPCID, g.Name), Value: g.ID},
	}
	for _, r := range g.Rules {
		ops = append(ops, store.Op{Key: RuleKey(s, r.ID), Value: g.ID})
	}
	return ops
}

// DeleteOps are the writes that delete g, unconditionally (DeleteVpc's
// checks decide whether it may go).
func DeleteOps(s resource.Scope, g Group) []store.Op {
	ops := []store.Op{
		{Key: resource.Key(s, Kind, g.ID), ModRev: -1, Delete: true},
		{Key: NameKey(s, g.VPCID, g.Name), ModRev: -1, Delete: true},
	}
	for _, r := range g.Rules {
		ops = append(ops, store.Op{Key: RuleKey(s, r.ID), ModRev: -1, Delete: true})
	}
	return ops
}

// stored is a group with the mod revision it was read at.
type stored struct {
	Group
	rev int64
}

// listGroups reads every group in scope, ordered by ID.
func listGroups(ctx context.Context, st *store.Store, s resource.Scope) ([]stored, error) {
	kvs, err := st.List(ctx, resource.Prefix(s, Kind))
	if err != nil {
		return nil, err
	}
	out := make([]stored, len(kvs))
	for i, kv := range kvs {
		if err := json.Unmarshal(kv.Value, &out[i].Group); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		out[i].rev = kv.ModRev
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// VPCGroups returns the groups of a VPC, its default group included (for
// DeleteVpc: every group but "default" is a dependency; the default group
// goes with the VPC through DeleteOps).
func VPCGroups(ctx context.Context, st *store.Store, s resource.Scope, vpcID string) ([]Group, error) {
	all, err := listGroups(ctx, st, s)
	if err != nil {
		return nil, err
	}
	var out []Group
	for _, g := range all {
		if g.VPCID == vpcID {
			out = append(out, g.Group)
		}
	}
	return out, nil
}
