package scheduler

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"nubo/internal/apierr"
)

// topo makes hosts named z/r/hN: zones × racks × hosts, each with the
// same capacity, all live.
func topo(zones, racks, hosts, vcpus int, mem int64, slots int) []Host {
	var hs []Host
	for z := 0; z < zones; z++ {
		for r := 0; r < racks; r++ {
			for h := 0; h < hosts; h++ {
				zn := fmt.Sprintf("z%c", 'a'+z)
				rn := fmt.Sprintf("r%d", r)
				hs = append(hs, Host{Name: fmt.Sprintf("%s-%s-h%d", zn, rn, h), Zone: zn, Rack: rn,
					VCPUs: vcpus, MemoryMiB: mem, Slots: slots, Live: true})
			}
		}
	}
	return hs
}

func members(g string, part int, hosts ...string) []Instance {
	var is []Instance
	for i, h := range hosts {
		is = append(is, Instance{ID: fmt.Sprintf("i-%s-%d-%d", g, part, i), Host: h, VCPUs: 1, MemoryMiB: 512, Group: g, Partition: part})
	}
	return is
}

var (
	clusterG   = &Group{ID: "pg-c", Name: "c", Strategy: Cluster}
	spreadG    = &Group{ID: "pg-s", Name: "s", Strategy: Spread}
	spreadHost = &Group{ID: "pg-sh", Name: "sh", Strategy: Spread, SpreadLevel: LevelHost}
	part3      = &Group{ID: "pg-p", Name: "p", Strategy: Partition, PartitionCount: 3}
)

func hostsOf(ps []Placement) []string {
	var hs []string
	for _, p := range ps {
		hs = append(hs, p.Host)
	}
	return hs
}

func TestPlace(t *testing.T) {
	one := topo(1, 1, 2, 4, 4096, 0) // za-r0-h0, za-r0-h1
	small := func(min, max int) Request {
		return Request{MinCount: min, MaxCount: max, VCPUs: 1, MemoryMiB: 512}
	}
	dead := topo(1, 1, 2, 4, 4096, 0)
	dead[0].Live = false
	rackHosts := topo(2, 3, 2, 8, 8192, 0)

	tests := []struct {
		name  string
		req   Request
		snap  Snapshot
		hosts []string // want these hosts (nil: don't check)
		n     int      // want this many placements (when hosts is nil)
		code  string   // want this error
		check func(t *testing.T, ps []Placement)
	}{
		{name: "vcpu limit", req: Request{MinCount: 1, MaxCount: 10, VCPUs: 3, MemoryMiB: 1}, snap: Snapshot{Hosts: one},
			hosts: []string{"za-r0-h0", "za-r0-h1"}},
		{name: "memory limit", req: Request{MinCount: 1, MaxCount: 10, VCPUs: 0, MemoryMiB: 1500}, snap: Snapshot{Hosts: one}, n: 4},
		{name: "slot limit", req: Request{MinCount: 1, MaxCount: 10}, snap: Snapshot{Hosts: topo(1, 1, 2, 4, 4096, 3)}, n: 6},
		{name: "existing usage counts", req: small(1, 10), snap: Snapshot{Hosts: one,
			Instances: []Instance{{ID: "i-1", Host: "za-r0-h0", VCPUs: 4, MemoryMiB: 1}}},
			hosts: []string{"za-r0-h1", "za-r0-h1", "za-r0-h1", "za-r0-h1"}},
		{name: "below MinCount fails whole", req: small(9, 10), snap: Snapshot{Hosts: one}, code: InsufficientInstanceCapacity},
		{name: "partial between Min and Max", req: small(2, 100), snap: Snapshot{Hosts: one}, n: 8},
		{name: "dead host skipped", req: small(1, 10), snap: Snapshot{Hosts: dead}, n: 4,
			check: func(t *testing.T, ps []Placement) {
				for _, p := range ps {
					if p.Host == "za-r0-h0" {
						t.Errorf("placed on dead host")
					}
				}
			}},
		{name: "all dead", req: small(1, 1), snap: Snapshot{Hosts: []Host{{Name: "x", Zone: "za", VCPUs: 8, MemoryMiB: 8192}}},
			code: InsufficientInstanceCapacity},
		{name: "zone pinning", req: Request{MinCount: 1, MaxCount: 3, Zone: "zb", VCPUs: 1, MemoryMiB: 1}, snap: Snapshot{Hosts: topo(2, 1, 1, 8, 8192, 0)},
			hosts: []string{"zb-r0-h0", "zb-r0-h0", "zb-r0-h0"}},
		{name: "unknown zone", req: Request{MinCount: 1, MaxCount: 1, Zone: "zz"}, snap: Snapshot{Hosts: one}, code: InsufficientInstanceCapacity},
		{name: "no group spreads least loaded", req: small(4, 4), snap: Snapshot{Hosts: one,
			Instances: []Instance{{ID: "i-1", Host: "za-r0-h0", VCPUs: 1, MemoryMiB: 1}}},
			hosts: []string{"za-r0-h1", "za-r0-h0", "za-r0-h1", "za-r0-h0"}},
		{name: "no group picks emptier zone", req: small(1, 1), snap: Snapshot{Hosts: topo(2, 1, 1, 8, 8192, 0),
			Instances: []Instance{{ID: "i-1", Host: "za-r0-h0", VCPUs: 1, MemoryMiB: 1}}},
			hosts: []string{"zb-r0-h0"}},
		{name: "dedicated avoids other account", req: Request{MinCount: 1, MaxCount: 1, Account: "a", Tenancy: TenancyDedicated},
			snap: Snapshot{Hosts: one, Instances: []Instance{{ID: "i-1", Host: "za-r0-h0", Account: "b"}}}, hosts: []string{"za-r0-h1"}},
		{name: "default avoids other's dedicated host", req: Request{MinCount: 1, MaxCount: 2, Account: "a"},
			snap:  Snapshot{Hosts: one, Instances: []Instance{{ID: "i-1", Host: "za-r0-h0", Account: "b", Dedicated: true}}},
			hosts: []string{"za-r0-h1", "za-r0-h1"}},
		{name: "dedicated shares with own account", req: Request{MinCount: 2, MaxCount: 2, Account: "a", Tenancy: TenancyDedicated},
			snap: Snapshot{Hosts: one[:1], Instances: []Instance{{ID: "i-1", Host: "za-r0-h0", Account: "a"}}}, n: 2},
		{name: "spread needs default tenancy", req: Request{MinCount: 1, MaxCount: 1, Tenancy: TenancyDedicated, Group: spreadG},
			snap: Snapshot{Hosts: one}, code: apierr.InvalidParameterCombination},
		{name: "MinCount over MaxCount", req: small(3, 2), snap: Snapshot{Hosts: one}, code: apierr.InvalidParameterValue},

		// cluster
		{name: "cluster one rack", req: Request{MinCount: 4, MaxCount: 4, VCPUs: 4, MemoryMiB: 1, Group: clusterG},
			snap: Snapshot{Hosts: rackHosts}, check: oneRack},
		{name: "cluster prefers rack fitting MaxCount", req: Request{MinCount: 1, MaxCount: 3, VCPUs: 8, MemoryMiB: 1, Group: clusterG},
			snap:  Snapshot{Hosts: append(topo(1, 2, 2, 8, 8192, 0), Host{Name: "za-r1-h2", Zone: "za", Rack: "r1", VCPUs: 8, MemoryMiB: 8192, Live: true})},
			hosts: []string{"za-r1-h0", "za-r1-h1", "za-r1-h2"}},
		{name: "cluster whole launch fails", req: Request{MinCount: 5, MaxCount: 5, VCPUs: 8, MemoryMiB: 1, Group: clusterG},
			snap: Snapshot{Hosts: rackHosts}, code: InsufficientInstanceCapacity},
		{name: "cluster partial within a rack", req: Request{MinCount: 2, MaxCount: 50, VCPUs: 8, MemoryMiB: 1, Group: clusterG},
			snap: Snapshot{Hosts: rackHosts}, n: 2, check: oneRack},
		{name: "cluster rack fixed by members", req: Request{MinCount: 2, MaxCount: 2, VCPUs: 1, MemoryMiB: 1, Group: clusterG},
			snap: Snapshot{Hosts: rackHosts, Instances: members("pg-c", 0, "zb-r2-h0")},
			check: func(t *testing.T, ps []Placement) {
				for _, p := range ps {
					if p.Zone != "zb" || p.Rack != "r2" {
						t.Errorf("placement %+v left the group's rack zb/r2", p)
					}
				}
			}},
		{name: "cluster members' rack full", req: Request{MinCount: 1, MaxCount: 1, VCPUs: 8, MemoryMiB: 1, Group: clusterG},
			snap: Snapshot{Hosts: rackHosts, Instances: append(members("pg-c", 0, "za-r0-h0"),
				Instance{ID: "x", Host: "za-r0-h0", VCPUs: 7}, Instance{ID: "y", Host: "za-r0-h1", VCPUs: 8})},
			code: InsufficientInstanceCapacity},
		{name: "cluster in use in another zone", req: Request{MinCount: 1, MaxCount: 1, Zone: "za", Group: clusterG},
			snap: Snapshot{Hosts: rackHosts, Instances: members("pg-c", 0, "zb-r0-h0")}, code: InvalidPlacementGroupInUse},

		// spread
		{name: "spread distinct racks", req: Request{MinCount: 2, MaxCount: 3, Zone: "za", Group: spreadG},
			snap: Snapshot{Hosts: rackHosts, Instances: members("pg-s", 0, "za-r0-h0")},
			check: func(t *testing.T, ps []Placement) {
				racks := map[string]bool{"r0": true}
				for _, p := range ps {
					if racks[p.Rack] {
						t.Errorf("rack %s twice", p.Rack)
					}
					racks[p.Rack] = true
				}
			}, n: 2}, // only r1, r2 left
		{name: "spread no free rack", req: Request{MinCount: 3, MaxCount: 3, Zone: "za", Group: spreadG},
			snap: Snapshot{Hosts: rackHosts, Instances: members("pg-s", 0, "za-r0-h0")}, code: InsufficientInstanceCapacity},
		{name: "spread seven per zone", req: Request{MinCount: 7, MaxCount: 7, Zone: "za", Group: spreadG},
			snap: Snapshot{Hosts: topo(2, 8, 1, 8, 8192, 0)}, n: 7},
		{name: "spread eighth fails", req: Request{MinCount: 1, MaxCount: 1, Zone: "za", Group: spreadG},
			snap: Snapshot{Hosts: topo(2, 8, 1, 8, 8192, 0), Instances: members("pg-s", 0,
				"za-r0-h0", "za-r1-h0", "za-r2-h0", "za-r3-h0", "za-r4-h0", "za-r5-h0", "za-r6-h0")},
			code: InsufficientInstanceCapacity},
		{name: "spread eighth goes to another zone", req: Request{MinCount: 1, MaxCount: 1, Group: spreadG},
			snap: Snapshot{Hosts: topo(2, 8, 1, 8, 8192, 0), Instances: members("pg-s", 0,
				"za-r0-h0", "za-r1-h0", "za-r2-h0", "za-r3-h0", "za-r4-h0", "za-r5-h0", "za-r6-h0")},
			hosts: []string{"zb-r0-h0"}},
		{name: "spread caps MaxCount at seven", req: Request{MinCount: 1, MaxCount: 10, Zone: "za", Group: spreadG},
			snap: Snapshot{Hosts: topo(1, 10, 1, 8, 8192, 0)}, n: 7},
		{name: "spread host level", req: Request{MinCount: 3, MaxCount: 3, Group: spreadHost},
			snap: Snapshot{Hosts: one[:1], Instances: nil}, code: InsufficientInstanceCapacity},
		{name: "spread host level distinct hosts, no 7 limit", req: Request{MinCount: 10, MaxCount: 10, Group: spreadHost},
			snap: Snapshot{Hosts: topo(1, 2, 6, 8, 8192, 0), Instances: members("pg-sh", 0, "za-r0-h0", "za-r1-h0")},
			check: func(t *testing.T, ps []Placement) {
				seen := map[string]bool{"za-r0-h0": true, "za-r1-h0": true}
				for _, p := range ps {
					if seen[p.Host] {
						t.Errorf("host %s twice", p.Host)
					}
					seen[p.Host] = true
				}
			}},

		// partition
		{name: "partition above count", req: Request{MinCount: 1, MaxCount: 1, Group: part3, Partition: 4},
			snap: Snapshot{Hosts: rackHosts}, code: apierr.InvalidParameterValue},
		{name: "partition without partition group", req: Request{MinCount: 1, MaxCount: 1, Group: spreadG, Partition: 1},
			snap: Snapshot{Hosts: rackHosts}, code: apierr.InvalidParameterCombination},
		{name: "partition fixed", req: Request{MinCount: 5, MaxCount: 5, Zone: "za", VCPUs: 1, MemoryMiB: 1, Group: part3, Partition: 2},
			snap: Snapshot{Hosts: rackHosts, Instances: append(members("pg-p", 1, "za-r0-h0"), members("pg-p", 2, "za-r2-h1")...)},
			check: func(t *testing.T, ps []Placement) {
				for _, p := range ps {
					if p.Partition != 2 || p.Rack != "r2" {
						t.Errorf("placement %+v: want partition 2 on its rack r2", p)
					}
				}
			}},
		{name: "partition grows into free racks only", req: Request{MinCount: 4, MaxCount: 4, Zone: "za", VCPUs: 8, MemoryMiB: 1, Group: part3, Partition: 2},
			snap: Snapshot{Hosts: rackHosts, Instances: append(members("pg-p", 1, "za-r0-h0"), members("pg-p", 2, "za-r2-h1")...)},
			code: InsufficientInstanceCapacity}, // r2 has room for 1 (h0) + 0 (h1 holds 1 vCPU), r1 free: 2 more; r0 is partition 1's
		{name: "partition automatic balance", req: Request{MinCount: 6, MaxCount: 6, Zone: "za", VCPUs: 1, MemoryMiB: 1, Group: part3},
			snap: Snapshot{Hosts: topo(1, 6, 1, 8, 8192, 0), Instances: append(members("pg-p", 1, "za-r0-h0", "za-r0-h0"), members("pg-p", 3, "za-r1-h0")...)},
			check: func(t *testing.T, ps []Placement) {
				var got []int
				for _, p := range ps {
					got = append(got, p.Partition)
				}
				// counts 2,0,1: 2 → 2,1,1; 2 → 2,2,1; 3 → 2,2,2; then 1,2,3
				if want := []int{2, 2, 3, 1, 2, 3}; !reflect.DeepEqual(got, want) {
					t.Errorf("partitions %v, want %v", got, want)
				}
				checkPartitionRacks(t, ps, map[string]int{"r0": 1, "r1": 3})
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Place(tc.req, tc.snap)
			if tc.code != "" {
				e, ok := apierr.As(err)
				if !ok || e.Code != tc.code {
					t.Fatalf("err = %v, want code %s (placements %v)", err, tc.code, ps)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.hosts != nil && !reflect.DeepEqual(hostsOf(ps), tc.hosts) {
				t.Errorf("hosts %v, want %v", hostsOf(ps), tc.hosts)
			}
			if tc.n != 0 && len(ps) != tc.n {
				t.Errorf("%d placements, want %d: %v", len(ps), tc.n, ps)
			}
			if tc.check != nil {
				tc.check(t, ps)
			}
		})
	}
}

func oneRack(t *testing.T, ps []Placement) {
	t.Helper()
	for _, p := range ps {
		if p.Zone != ps[0].Zone || p.Rack != ps[0].Rack {
			t.Errorf("cluster split: %v", ps)
		}
	}
}

func checkPartitionRacks(t *testing.T, ps []Placement, owner map[string]int) {
	t.Helper()
	for _, p := range ps {
		if o, ok := owner[p.Rack]; ok && o != p.Partition {
			t.Errorf("rack %s holds partitions %d and %d", p.Rack, o, p.Partition)
		}
		owner[p.Rack] = p.Partition
	}
}

func TestDeterministic(t *testing.T) {
	hosts := topo(3, 4, 5, 8, 16384, 6)
	var insts []Instance
	for i := 0; i < 40; i++ {
		insts = append(insts, Instance{ID: fmt.Sprint(i), Host: hosts[(i*7)%len(hosts)].Name, VCPUs: 1 + i%3, MemoryMiB: 1024})
	}
	for _, g := range []*Group{nil, clusterG, spreadG, spreadHost, part3} {
		req := Request{MinCount: 1, MaxCount: 20, VCPUs: 2, MemoryMiB: 2048, Group: g}
		a, errA := Place(req, Snapshot{Hosts: hosts, Instances: insts})
		// the same snapshot in reverse order
		rh := append([]Host(nil), hosts...)
		ri := append([]Instance(nil), insts...)
		for i, j := 0, len(rh)-1; i < j; i, j = i+1, j-1 {
			rh[i], rh[j] = rh[j], rh[i]
		}
		for i, j := 0, len(ri)-1; i < j; i, j = i+1, j-1 {
			ri[i], ri[j] = ri[j], ri[i]
		}
		b, errB := Place(req, Snapshot{Hosts: rh, Instances: ri})
		if fmt.Sprint(errA) != fmt.Sprint(errB) || !reflect.DeepEqual(a, b) {
			t.Errorf("group %v: %v / %v differ from %v / %v", g, a, errA, b, errB)
		}
		if errA != nil && !strings.Contains(errA.Error(), InsufficientInstanceCapacity) {
			t.Errorf("group %v: %v", g, errA)
		}
	}
}
