package scheduler

import (
	"container/heap"
	"sort"

	"nubo/internal/apierr"
)

// Place decides where MinCount..MaxCount instances of req go: as many as fit
// up to MaxCount, all in one zone, or an *apierr.Error when not even
// MinCount fit or the request breaks a rule. It does not change snap.
func Place(req Request, snap Snapshot) ([]Placement, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	s := build(req, snap)
	zones, err := s.candidateZones()
	if err != nil {
		return nil, err
	}
	var best []Placement
	var firstErr error
	for _, z := range zones {
		ps, err := s.placeIn(z)
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		case len(ps) == req.MaxCount:
			return ps, nil
		case len(ps) > len(best):
			best = ps
		}
	}
	if best != nil {
		return best, nil
	}
	if firstErr == nil {
		firstErr = errf(InsufficientInstanceCapacity, "There is no host in availability zone %q.", req.Zone)
	}
	return nil, firstErr
}

func validate(req Request) error {
	if req.MinCount < 1 || req.MaxCount < req.MinCount {
		return errf(apierr.InvalidParameterValue, "MinCount (%d) must be at least 1 and at most MaxCount (%d).", req.MinCount, req.MaxCount)
	}
	if req.VCPUs < 0 || req.MemoryMiB < 0 {
		return errf(apierr.InvalidParameterValue, "An instance needs non-negative vCPUs and memory.")
	}
	switch req.Tenancy {
	case "", TenancyDefault, TenancyDedicated:
	default:
		return errf(apierr.InvalidParameterValue, "Tenancy %q is not supported.", req.Tenancy)
	}
	g := req.Group
	if g == nil {
		if req.Partition != 0 {
			return errf(apierr.InvalidParameterCombination, "A partition number needs a partition placement group.")
		}
		return nil
	}
	switch g.Strategy {
	case Cluster:
	case Spread:
		if g.SpreadLevel != "" && g.SpreadLevel != LevelRack && g.SpreadLevel != LevelHost {
			return errf(apierr.InvalidParameterValue, "Spread level %q is not valid.", g.SpreadLevel)
		}
		if req.Tenancy == TenancyDedicated {
			return errf(apierr.InvalidParameterCombination, "Instances in spread placement group %q must have default tenancy.", g.Name)
		}
	case Partition:
		if g.PartitionCount < 1 || g.PartitionCount > MaxPartitions {
			return errf(apierr.InvalidParameterValue, "Placement group %q has %d partitions; 1 to %d are allowed.", g.Name, g.PartitionCount, MaxPartitions)
		}
		if req.Partition < 0 || req.Partition > g.PartitionCount {
			return errf(apierr.InvalidParameterValue, "Partition number %d is not valid for placement group %q, which has %d partitions.", req.Partition, g.Name, g.PartitionCount)
		}
	default:
		return errf(apierr.InvalidParameterValue, "Placement strategy %q is not valid.", g.Strategy)
	}
	if req.Partition != 0 && g.Strategy != Partition {
		return errf(apierr.InvalidParameterCombination, "A partition number is valid only for a partition placement group; %q is %s.", g.Name, g.Strategy)
	}
	return nil
}

// candidateZones orders the zones to try: req.Zone alone, the zone of a
// cluster group's members alone, else fewest group members, fewest
// instances, name.
func (s *state) candidateZones() ([]*zone, error) {
	g := s.req.Group
	if g != nil && g.Strategy == Cluster {
		var home *zone
		for _, z := range s.zones { // one zone normally; most members if not
			if z.members > 0 && (home == nil || z.members > home.members) {
				home = z
			}
		}
		if home != nil {
			if s.req.Zone != "" && s.req.Zone != home.name {
				return nil, errf(InvalidPlacementGroupInUse, "The placement group '%s' is in use in another availability zone: %s", g.Name, home.name)
			}
			return []*zone{home}, nil
		}
	}
	if s.req.Zone != "" {
		if z := s.byZ[s.req.Zone]; z != nil {
			return []*zone{z}, nil
		}
		return nil, nil
	}
	zs := append([]*zone(nil), s.zones...)
	sort.SliceStable(zs, func(i, j int) bool {
		a, b := zs[i], zs[j]
		if a.members != b.members {
			return a.members < b.members
		}
		return a.instances < b.instances // names: zs is sorted already
	})
	return zs, nil
}

// placeIn places the request in z: at least MinCount placements, or an error.
func (s *state) placeIn(z *zone) ([]Placement, error) {
	g := s.req.Group
	var ps []Placement
	var err error
	switch {
	case g == nil:
		ps = s.fill(s.newPool(z.nodes), s.req.MaxCount, 0, nil)
	case g.Strategy == Cluster:
		return s.cluster(z)
	case g.Strategy == Spread && g.SpreadLevel == LevelHost:
		ps = s.spreadHosts(z)
	case g.Strategy == Spread:
		if ps, err = s.spreadRacks(z); err != nil {
			return nil, err
		}
	default:
		ps = s.partition(z)
	}
	if len(ps) < s.req.MinCount {
		return nil, s.noCapacity(z, len(ps))
	}
	return ps, nil
}

func (s *state) noCapacity(z *zone, got int) error {
	msg := "We currently do not have sufficient capacity in availability zone %s: %d of the %d instances requested (minimum) fit."
	if g := s.req.Group; g != nil {
		return errf(InsufficientInstanceCapacity, msg+" Placement group: %s.", z.name, got, s.req.MinCount, g.Name)
	}
	return errf(InsufficientInstanceCapacity, msg, z.name, got, s.req.MinCount)
}

// cluster puts every instance in one rack: the members' rack if the group
// has members, else the rack that fits the most (up to MaxCount), ties by
// name. It is all or nothing at MinCount, as EC2's cluster launches are.
func (s *state) cluster(z *zone) ([]Placement, error) {
	var best *rack
	bestFit := -1
	for _, r := range z.racks {
		if z.members > 0 && r.members == 0 {
			continue
		}
		fit := 0
		for _, n := range r.nodes {
			if fit += s.room(n, s.req.MaxCount-fit); fit == s.req.MaxCount {
				break
			}
		}
		if fit > bestFit || (z.members > 0 && fit == bestFit && r.members > best.members) {
			best, bestFit = r, fit
		}
	}
	if best == nil || bestFit < s.req.MinCount {
		return nil, s.noCapacity(z, max0(bestFit))
	}
	return s.fill(s.newPool(best.nodes), bestFit, 0, nil), nil
}

// spreadRacks gives each instance a rack of z holding no member of the
// group, at most MaxSpreadPerZone members in z; the racks whose least
// loaded fitting host is lightest go first.
func (s *state) spreadRacks(z *zone) ([]Placement, error) {
	quota := MaxSpreadPerZone - z.members
	if quota < s.req.MinCount {
		return nil, errf(InsufficientInstanceCapacity,
			"Spread placement group %s already has %d running instances in availability zone %s; at most %d are allowed per zone, %d were requested (minimum).",
			s.req.Group.Name, z.members, z.name, MaxSpreadPerZone, s.req.MinCount)
	}
	var cands []*node
	for _, r := range z.racks {
		if r.members > 0 {
			continue
		}
		var b *node
		for _, n := range r.nodes {
			if s.fits(n) && (b == nil || lighter(n, b)) {
				b = n
			}
		}
		if b != nil {
			cands = append(cands, b)
		}
	}
	return s.takeDistinct(cands, min(quota, s.req.MaxCount)), nil
}

// spreadHosts gives each instance a host of z holding no member of the
// group, lightest first. EC2 sets no count limit at host level.
func (s *state) spreadHosts(z *zone) []Placement {
	var cands []*node
	for _, n := range z.nodes {
		if n.members == 0 && s.fits(n) {
			cands = append(cands, n)
		}
	}
	return s.takeDistinct(cands, s.req.MaxCount)
}

// takeDistinct places one instance on each of the k lightest cands.
func (s *state) takeDistinct(cands []*node, k int) []Placement {
	sort.Slice(cands, func(i, j int) bool { return lighter(cands[i], cands[j]) })
	var ps []Placement
	for _, n := range cands[:min(k, len(cands))] {
		ps = append(ps, s.take(n, 0))
	}
	return ps
}

// partition places each instance in its partition (fixed, or the one with
// the fewest members in z, ties lowest): on the partition's racks, least
// loaded first, claiming the first free rack by name when they are full.
func (s *state) partition(z *zone) []Placement {
	count := s.req.Group.PartitionCount
	pools := make([]*pool, count+1)
	for p := 1; p <= count; p++ {
		var owned [][]*node
		for _, r := range z.racks {
			if r.owner == p {
				owned = append(owned, r.nodes)
			}
		}
		pools[p] = s.newPool(owned...)
	}
	free := 0 // z.racks[free:] may still be claimed; claims only move it on
	claim := func(p int) *node {
		for ; free < len(z.racks); free++ {
			r := z.racks[free]
			if r.members > 0 || r.owner != 0 {
				continue
			}
			s.add(pools[p], r.nodes)
			if pools[p].Len() > 0 {
				r.owner = p
				free++
				return (*pools[p])[0]
			}
		}
		return nil
	}
	dead := make([]bool, count+1)
	var ps []Placement
	for len(ps) < s.req.MaxCount {
		p := s.req.Partition
		if p == 0 {
			for q := 1; q <= count; q++ {
				if !dead[q] && (p == 0 || z.parts[q] < z.parts[p]) {
					p = q
				}
			}
			if p == 0 {
				break
			}
		}
		n := s.best(pools[p])
		if n == nil {
			n = claim(p)
		}
		if n == nil {
			if s.req.Partition != 0 {
				break
			}
			dead[p] = true
			continue
		}
		ps = append(ps, s.take(n, p))
		heap.Fix(pools[p], 0)
	}
	return ps
}
