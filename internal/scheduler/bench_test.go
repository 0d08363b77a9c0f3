package scheduler

import (
	"fmt"
	"testing"
)

// BenchmarkPlace1000 places up to 1,000 instances over 1,000 hosts (3 zones
// × 20 racks × ~17 hosts, 16 vCPUs, 64 GiB, 16 slots) already holding 1,000
// instances, once without a group and once per strategy.
func BenchmarkPlace1000(b *testing.B) {
	var hosts []Host
	for i := 0; i < 1000; i++ {
		z, r := i%3, (i/3)%20
		hosts = append(hosts, Host{Name: fmt.Sprintf("h%04d", i), Zone: fmt.Sprintf("z%d", z), Rack: fmt.Sprintf("r%02d", r),
			VCPUs: 16, MemoryMiB: 65536, Slots: 16, Live: true})
	}
	var insts []Instance
	for i := 0; i < 1000; i++ {
		insts = append(insts, Instance{ID: fmt.Sprintf("i-%d", i), Host: hosts[(i*7)%1000].Name, VCPUs: 2, MemoryMiB: 4096})
	}
	snap := Snapshot{Hosts: hosts, Instances: insts}
	cases := []struct {
		name string
		max  int
		g    *Group
	}{
		{"nogroup", 1000, nil},
		{"cluster", 100, clusterG},
		{"spread-rack", 7, spreadG},
		{"spread-host", 300, spreadHost},
		{"partition", 1000, &Group{ID: "pg-p7", Name: "p7", Strategy: Partition, PartitionCount: 7}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := Request{MinCount: c.max, MaxCount: c.max, VCPUs: 1, MemoryMiB: 2048, Group: c.g}
			b.ReportAllocs()
			for b.Loop() {
				ps, err := Place(req, snap)
				if err != nil || len(ps) != c.max {
					b.Fatal(len(ps), err)
				}
			}
			b.ReportMetric(float64(c.max)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
		})
	}
}
