package scheduler

import (
	"fmt"
	"math/rand"
	"testing"

	"nubo/internal/apierr"
)

// TestPlaceProperties runs random launches, stops and host failures on
// random topologies and checks the whole state after each step with a
// checker that shares no code with Place.
func TestPlaceProperties(t *testing.T) {
	groups := []*Group{nil, clusterG, spreadG, spreadHost, part3,
		{ID: "pg-p7", Name: "p7", Strategy: Partition, PartitionCount: 7}}
	placed, failed := 0, 0
	defer func() {
		// the random requests must exercise both outcomes
		if placed < 500 || failed < 50 {
			t.Errorf("%d placed, %d failed launches: the generator is off", placed, failed)
		}
	}()
	for seed := int64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewSource(seed))
		var hosts []Host
		for z := 0; z < 1+rng.Intn(3); z++ {
			for r := 0; r < 1+rng.Intn(9); r++ {
				for h := 0; h < 1+rng.Intn(4); h++ {
					hosts = append(hosts, Host{Name: fmt.Sprintf("z%d-r%d-h%d", z, r, h), Zone: fmt.Sprintf("z%d", z), Rack: fmt.Sprintf("r%d", r),
						VCPUs: 2 + rng.Intn(15), MemoryMiB: int64(1024 * (1 + rng.Intn(32))), Slots: rng.Intn(6), Live: rng.Intn(8) != 0})
				}
			}
		}
		var insts []Instance
		for step := 0; step < 30; step++ {
			switch rng.Intn(10) {
			case 0: // a stop: the instance gives its capacity back
				if len(insts) > 0 {
					i := rng.Intn(len(insts))
					insts = append(insts[:i], insts[i+1:]...)
				}
				continue
			case 1:
				hosts[rng.Intn(len(hosts))].Live = rng.Intn(2) == 0
				continue
			}
			g := groups[rng.Intn(len(groups))]
			max := 1 + rng.Intn(12)
			req := Request{MinCount: 1 + rng.Intn(max), MaxCount: max, VCPUs: rng.Intn(5), MemoryMiB: int64(512 * rng.Intn(9)),
				Group: g, Account: fmt.Sprintf("acct%d", rng.Intn(2))}
			if rng.Intn(3) == 0 {
				req.Zone = fmt.Sprintf("z%d", rng.Intn(3))
			}
			if g == nil && rng.Intn(4) == 0 {
				req.Tenancy = TenancyDedicated
			}
			if g != nil && g.Strategy == Partition && rng.Intn(2) == 0 {
				req.Partition = 1 + rng.Intn(g.PartitionCount)
			}
			ps, err := Place(req, Snapshot{Hosts: hosts, Instances: insts})
			if err != nil {
				failed++
				if _, ok := apierr.As(err); !ok {
					t.Fatalf("seed %d: untyped error %v", seed, err)
				}
				if g == nil && req.Zone == "" && req.Tenancy == "" && totalRoom(req, hosts, insts) >= req.MinCount*len(hosts) {
					t.Fatalf("seed %d: %v with room everywhere", seed, err)
				}
				continue
			}
			placed += len(ps)
			if len(ps) < req.MinCount || len(ps) > req.MaxCount {
				t.Fatalf("seed %d: %d placements for %d..%d", seed, len(ps), req.MinCount, req.MaxCount)
			}
			byName := map[string]Host{}
			for _, h := range hosts {
				byName[h.Name] = h
			}
			for i, p := range ps {
				h := byName[p.Host]
				if !h.Live || h.Zone != p.Zone || h.Rack != p.Rack || p.Zone != ps[0].Zone || (req.Zone != "" && p.Zone != req.Zone) {
					t.Fatalf("seed %d: bad placement %+v on %+v (request zone %q)", seed, p, h, req.Zone)
				}
				gid := ""
				if g != nil {
					gid = g.ID
				}
				insts = append(insts, Instance{ID: fmt.Sprintf("i-%d-%d", step, i), Host: p.Host, VCPUs: req.VCPUs, MemoryMiB: req.MemoryMiB,
					Group: gid, Partition: p.Partition, Account: req.Account, Dedicated: req.Tenancy == TenancyDedicated})
				if req.Partition != 0 && p.Partition != req.Partition {
					t.Fatalf("seed %d: partition %d, asked %d", seed, p.Partition, req.Partition)
				}
			}
			if msg := violation(hosts, insts, groups); msg != "" {
				t.Fatalf("seed %d step %d: %s", seed, step, msg)
			}
		}
	}
}

// totalRoom is MinCount per host when every host is live, holds no
// dedicated instance and can take MinCount more: then a no-group request
// must succeed. Otherwise 0 (no claim).
func totalRoom(req Request, hosts []Host, insts []Instance) int {
	total := 0
	for _, h := range hosts {
		v, m, s := 0, int64(0), 0
		for _, in := range insts {
			if in.Host == h.Name {
				v, m, s = v+in.VCPUs, m+in.MemoryMiB, s+1
				if in.Dedicated {
					return 0
				}
			}
		}
		k := req.MinCount
		if !h.Live || v+k*req.VCPUs > h.VCPUs || m+int64(k)*req.MemoryMiB > h.MemoryMiB || (h.Slots > 0 && s+k > h.Slots) {
			return 0
		}
		total += k
	}
	return total
}

// violation checks every rule on the whole state; "" if none is broken.
func violation(hosts []Host, insts []Instance, groups []*Group) string {
	byName := map[string]Host{}
	for _, h := range hosts {
		byName[h.Name] = h
	}
	type use struct {
		v, s      int
		m         int64
		accts     map[string]bool
		dedicated map[string]bool
	}
	uses := map[string]*use{}
	for _, in := range insts {
		u := uses[in.Host]
		if u == nil {
			u = &use{accts: map[string]bool{}, dedicated: map[string]bool{}}
			uses[in.Host] = u
		}
		u.v, u.m, u.s = u.v+in.VCPUs, u.m+in.MemoryMiB, u.s+1
		u.accts[in.Account] = true
		if in.Dedicated {
			u.dedicated[in.Account] = true
		}
	}
	for name, u := range uses {
		h := byName[name]
		if u.v > h.VCPUs || u.m > h.MemoryMiB || (h.Slots > 0 && u.s > h.Slots) {
			return fmt.Sprintf("host %s over capacity: %+v", name, *u)
		}
		if len(u.dedicated) > 0 && len(u.accts) > 1 {
			return fmt.Sprintf("host %s: dedicated instances share with %v", name, u.accts)
		}
	}
	for _, g := range groups {
		if g == nil {
			continue
		}
		zones := map[string]bool{}
		racks := map[string]int{}     // zone/rack → members
		hostsUsed := map[string]int{} // host → members
		owner := map[string]int{}     // zone/rack → partition
		perZone := map[string]int{}
		for _, in := range insts {
			if in.Group != g.ID {
				continue
			}
			h := byName[in.Host]
			zr := h.Zone + "/" + h.Rack
			zones[h.Zone] = true
			racks[zr]++
			hostsUsed[h.Name]++
			perZone[h.Zone]++
			switch g.Strategy {
			case Partition:
				if in.Partition < 1 || in.Partition > g.PartitionCount {
					return fmt.Sprintf("group %s: partition %d", g.Name, in.Partition)
				}
				if o, ok := owner[zr]; ok && o != in.Partition {
					return fmt.Sprintf("group %s: rack %s holds partitions %d and %d", g.Name, zr, o, in.Partition)
				}
				owner[zr] = in.Partition
			default:
				if in.Partition != 0 {
					return fmt.Sprintf("group %s: partition %d", g.Name, in.Partition)
				}
			}
		}
		switch {
		case g.Strategy == Cluster && len(racks) > 1:
			return fmt.Sprintf("cluster %s spans %v", g.Name, racks)
		case g.Strategy == Spread && g.SpreadLevel == LevelHost:
			for h, n := range hostsUsed {
				if n > 1 {
					return fmt.Sprintf("spread %s: %d on host %s", g.Name, n, h)
				}
			}
		case g.Strategy == Spread:
			for r, n := range racks {
				if n > 1 {
					return fmt.Sprintf("spread %s: %d on rack %s", g.Name, n, r)
				}
			}
			for z, n := range perZone {
				if n > MaxSpreadPerZone {
					return fmt.Sprintf("spread %s: %d in zone %s", g.Name, n, z)
				}
			}
		}
	}
	return ""
}
