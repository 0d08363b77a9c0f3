package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"nubo/internal/apierr"
	"nubo/internal/catalog"
	"nubo/internal/scheduler"
	"nubo/internal/store"
	"nubo/internal/topology"
)

// PlacementGroup is what placing an instance needs of its placement group:
// its rules, and the key of its record, which every launch into the group
// rewrites (unchanged) under a revision check. That serialises launches
// into one group, so two of them cannot both take the last spread slot, and
// makes a concurrent DeletePlacementGroup see them.
type PlacementGroup struct {
	*scheduler.Group
	Key string
}

// GroupLookup finds an account's placement group by name or by ID (one of
// the two is set), answering EC2's errors for unknown ones.
type GroupLookup func(ctx context.Context, account, name, id string) (PlacementGroup, error)

// usage is what one instance of type it holds of its host.
func usage(it catalog.InstanceType, in Instance) topology.Usage {
	return topology.Usage{
		VCPUs: int(it.VCpuInfo.DefaultVCpus), MemoryMiB: it.MemoryInfo.SizeInMiB,
		Account: in.Account, Group: in.PlacementGroupID, Partition: in.Partition,
		Dedicated: in.Tenancy == scheduler.TenancyDedicated,
	}
}

// lookupGroup resolves a placement group; nil when none is named.
func (s *Service) lookupGroup(ctx context.Context, account, name, id string) (*PlacementGroup, error) {
	if name == "" && id == "" {
		return nil, nil
	}
	if s.PlacementGroups == nil {
		return nil, apierr.New("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown.", name+id)
	}
	g, err := s.PlacementGroups(ctx, account, name, id)
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// groupOp rewrites g's record as it is, under a check that it did not
// change: the launch's transaction then conflicts with any other launch
// into the group, and fails if the group was deleted meanwhile. Read it
// before the topology the launch decides from, or a launch committing in
// between would be neither seen nor a conflict.
func (s *Service) groupOp(ctx context.Context, g *PlacementGroup) (store.Op, error) {
	var raw json.RawMessage
	rev, err := s.Store.GetRev(ctx, g.Key, &raw)
	if err != nil {
		return store.Op{}, err
	}
	if rev == 0 {
		return store.Op{}, apierr.New("InvalidPlacementGroup.Unknown", "The Placement Group '%s' is unknown.", g.Name)
	}
	return store.Op{Key: g.Key, Value: raw, ModRev: rev}, nil
}

// FailHosts stops every instance holding capacity on hosts, as a power
// loss would: no shutdown, the reason in StateReason, capacity released.
// Their other instances go on. It returns the IDs of the instances stopped.
func (s *Service) FailHosts(ctx context.Context, hosts []topology.Host) ([]string, error) {
	var stopped []string
	for _, h := range hosts {
		var a topology.Allocation
		if _, err := s.Store.GetRev(ctx, topology.AllocationKey(h.ID), &a); err != nil {
			return stopped, err
		}
		why := fmt.Sprintf("%s: host %s in rack %s of %s failed", ReasonHostFailed.Message, h.ID, h.Rack, h.Zone)
		if h.Failed != nil && h.Failed.Reason != "" {
			why += " (" + h.Failed.Reason + ")"
		}
		var ids []string
		for id, u := range a.Instances {
			_, err := store.Update(ctx, s.Store, Key(u.Account, h.Region, id), func(in *Instance) error {
				if in.Desired != Running || in.Host != h.ID {
					return errUnchanged
				}
				in.Desired, in.State, in.ForceStop = Stopped, Stopping, true
				in.StateReason = &Reason{Code: ReasonHostFailed.Code, Message: why}
				in.StateTransitionReason = s.transitionReason("Server.InternalError")
				return nil
			})
			switch {
			case err == nil:
				stopped = append(stopped, id)
			case errors.Is(err, errUnchanged), errors.Is(err, store.ErrNotFound):
			default:
				return stopped, fmt.Errorf("stopping %s: %w", id, err)
			}
			ids = append(ids, id)
		}
		if err := topology.Release(ctx, s.Store, h.ID, ids...); err != nil {
			return stopped, err
		}
	}
	return stopped, nil
}

var errUnchanged = errors.New("unchanged")

// sched is g's rules for the scheduler; nil for no group.
func (g *PlacementGroup) sched() *scheduler.Group {
	if g == nil {
		return nil
	}
	return g.Group
}

// replace places stopped instance in again, as a launch of one under the
// same rules: its group's, in its partition, possibly on another host of
// its machine (whose disks hold its volumes). It sets in.Host and returns
// the writes that take the capacity.
func (s *Service) replace(ctx context.Context, in *Instance) ([]store.Op, error) {
	it, _ := catalog.LookupInstanceType(in.InstanceType)
	group, err := s.lookupGroup(ctx, in.Account, "", in.PlacementGroupID)
	if err != nil {
		return nil, err
	}
	var ops []store.Op
	if group != nil { // before the topology, as in Run
		op, err := s.groupOp(ctx, group)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	view, err := topology.Read(ctx, s.Store)
	if err != nil {
		return nil, err
	}
	machine := in.MachineName()
	ps, err := scheduler.Place(scheduler.Request{
		MinCount: 1, MaxCount: 1, Zone: in.Zone,
		VCPUs: int(it.VCpuInfo.DefaultVCpus), MemoryMiB: it.MemoryInfo.SizeInMiB,
		Account: in.Account, Tenancy: in.Tenancy, Group: group.sched(), Partition: in.Partition,
	}, view.Scheduling(func(h topology.Host) bool { return h.Machine == machine }, in.ID))
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Code == scheduler.InsufficientInstanceCapacity {
			return nil, apierr.New(ae.Code, "We currently do not have sufficient %s capacity to start instance %s. %s", in.InstanceType, in.ID, ae.Message)
		}
		return nil, err
	}
	old := in.Host
	in.Host, in.Machine = ps[0].Host, machine
	if ps[0].Partition != 0 {
		in.Partition = ps[0].Partition
	}
	ops = append(ops, view.Take([]string{in.ID}, []string{in.Host}, []topology.Usage{usage(it, *in)})...)
	if old != in.Host {
		if op, ok := view.Drop(old, in.ID); ok {
			ops = append(ops, op)
		}
	}
	return ops, nil
}

// PlacementChange is ModifyInstancePlacement: a new group (by name or ID;
// both empty with Group set: out of its group), partition, tenancy.
type PlacementChange struct {
	Group              bool // the group is to change
	GroupName, GroupID string
	Partition          int    // 0: none, or the scheduler's choice at start
	Tenancy            string // "": unchanged
}

// ModifyPlacement moves a stopped instance to or from a placement group or
// partition, or changes its tenancy; its next start places it under the
// new rules.
func (s *Service) ModifyPlacement(ctx context.Context, account, id string, c PlacementChange) error {
	group, err := s.lookupGroup(ctx, account, c.GroupName, c.GroupID)
	if err != nil {
		return err
	}
	for {
		var in Instance
		rev, err := s.Store.Get(ctx, Key(account, s.Region, id), &in)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		} else if err != nil {
			return err
		}
		if in.State != Stopped {
			return apierr.New("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state; its placement can change only while it is stopped.", id)
		}
		if c.Group {
			in.PlacementGroupID, in.PlacementGroupName, in.Partition = "", "", 0
			if group != nil {
				in.PlacementGroupID, in.PlacementGroupName = group.ID, group.Name
			}
		}
		if c.Partition != 0 {
			in.Partition = c.Partition
		}
		if c.Tenancy != "" {
			in.Tenancy = c.Tenancy
		}
		if err := s.checkPlacement(ctx, in, group); err != nil {
			return err
		}
		ops := []store.Op{{Key: Key(account, s.Region, id), Value: in, ModRev: rev}}
		if group != nil {
			op, err := s.groupOp(ctx, group)
			if err != nil {
				return err
			}
			ops = append(ops, op)
		}
		if err := s.Store.Apply(ctx, ops...); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// checkPlacement applies the rules the scheduler would at the next start
// now, so that a change it would refuse is refused when asked.
func (s *Service) checkPlacement(ctx context.Context, in Instance, group *PlacementGroup) error {
	g := group
	if g == nil && in.PlacementGroupID != "" {
		var err error
		if g, err = s.lookupGroup(ctx, in.Account, "", in.PlacementGroupID); err != nil {
			return err
		}
	}
	switch {
	case in.Partition != 0 && (g == nil || g.Strategy != scheduler.Partition):
		return apierr.New(apierr.InvalidParameterCombination, "A partition number is valid only in a partition placement group.")
	case g != nil && g.Strategy == scheduler.Partition && in.Partition > g.PartitionCount:
		return apierr.New(apierr.InvalidParameterValue, "Partition number %d is not valid for placement group '%s', which has %d partitions.", in.Partition, g.Name, g.PartitionCount)
	case g != nil && g.Strategy == scheduler.Spread && in.Tenancy == scheduler.TenancyDedicated:
		return apierr.New(apierr.InvalidParameterCombination, "Instances in spread placement group '%s' must have default tenancy.", g.Name)
	}
	return nil
}

// InGroup reports whether any of account's instances that is not
// terminated is in placement group groupID (DeletePlacementGroup refuses).
func (s *Service) InGroup(ctx context.Context, account, groupID string) (bool, error) {
	all, err := s.List(ctx, account)
	if err != nil {
		return false, err
	}
	for _, in := range all {
		if in.PlacementGroupID == groupID && in.State != Terminated {
			return true, nil
		}
	}
	return false, nil
}

// groupZone is the zone a launch into group goes to when it names neither
// subnet nor zone: the first that takes it of the zones ordered by the
// group's members there, most first (then as configured). So a cluster or
// partition group stays where it is, and a full spread group's next
// instance goes to another zone.
func (s *Service) groupZone(ctx context.Context, account string, it catalog.InstanceType, spec RunSpec, group *PlacementGroup) (string, error) {
	view, err := topology.Read(ctx, s.Store)
	if err != nil {
		return "", err
	}
	snap := view.Scheduling(nil, "")
	zoneOf := map[string]string{}
	for _, h := range snap.Hosts {
		zoneOf[h.Name] = h.Zone
	}
	members := map[string]int{}
	for _, in := range snap.Instances {
		if in.Group == group.ID {
			members[zoneOf[in.Host]]++
		}
	}
	zones := append([]string(nil), s.Zones...)
	sort.SliceStable(zones, func(i, j int) bool { return members[zones[i]] > members[zones[j]] })
	var first error
	for _, z := range zones {
		_, err := scheduler.Place(scheduler.Request{
			MinCount: spec.MinCount, MaxCount: spec.MaxCount, Zone: z,
			VCPUs: int(it.VCpuInfo.DefaultVCpus), MemoryMiB: it.MemoryInfo.SizeInMiB,
			Account: account, Tenancy: spec.Tenancy, Group: group.sched(), Partition: spec.PartitionNumber,
		}, snap)
		if err == nil {
			return z, nil
		}
		if first == nil {
			first = err
		}
	}
	return "", first
}
