package daemon

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"nubo/internal/instance"
	"nubo/internal/topology"
)

// PrintTopology writes the hosts, racks and zones of the store's topology
// and what runs where, one host per line.
func PrintTopology(ctx context.Context, dataDir string, endpoints []string, w io.Writer) error {
	st, closeStore, err := openStore(ctx, dataDir, endpoints)
	if err != nil {
		return err
	}
	defer closeStore()
	v, err := topology.Read(ctx, st)
	if err != nil {
		return err
	}
	hosts := append([]topology.Host(nil), v.Hosts...)
	sort.Slice(hosts, func(i, j int) bool {
		a, b := hosts[i], hosts[j]
		if a.Zone != b.Zone {
			return a.Zone < b.Zone
		}
		if a.Rack != b.Rack {
			return a.Rack < b.Rack
		}
		return a.ID < b.ID
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ZONE\tRACK\tHOST\tMACHINE\tSTATE\tVCPUS\tMEMORY MIB\tINSTANCES")
	for _, h := range hosts {
		a := v.Alloc[h.ID]
		used := a.Sum()
		var ins []string
		for id, u := range a.Instances {
			s := id
			if u.Group != "" {
				s += " (" + u.Group
				if u.Partition != 0 {
					s += fmt.Sprintf(" partition %d", u.Partition)
				}
				s += ")"
			}
			ins = append(ins, s)
		}
		sort.Strings(ins)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\t%s\n", h.Zone, h.Rack, h.ID, h.Machine, hostState(h, v.Live[h.Machine]),
			used.VCPUs, h.VCPUs, used.MemoryMiB, h.MemoryMiB, strings.Join(ins, ", "))
	}
	return tw.Flush()
}

func hostState(h topology.Host, live bool) string {
	switch {
	case h.Failed != nil:
		return "failed"
	case h.Retired:
		return "retired"
	case !live:
		return "down"
	}
	return "up"
}

// FailHosts marks the selected hosts failed and stops every instance on
// them, as the loss of their hardware would; it returns what it stopped.
// Repair (repair true) clears the mark: stopped instances stay stopped.
func FailHosts(ctx context.Context, dataDir string, endpoints []string, sel topology.Selector, reason string, repair bool) ([]topology.Host, []string, error) {
	st, closeStore, err := openStore(ctx, dataDir, endpoints)
	if err != nil {
		return nil, nil, err
	}
	defer closeStore()
	if repair {
		hosts, err := topology.Repair(ctx, st, sel)
		return hosts, nil, err
	}
	hosts, err := topology.Fail(ctx, st, sel, reason)
	if err != nil {
		return nil, nil, err
	}
	byRegion := map[string][]topology.Host{}
	for _, h := range hosts {
		byRegion[h.Region] = append(byRegion[h.Region], h)
	}
	var stopped []string
	for region, hs := range byRegion {
		ids, err := (&instance.Service{Store: st, Region: region}).FailHosts(ctx, hs)
		stopped = append(stopped, ids...)
		if err != nil {
			return hosts, stopped, err
		}
	}
	return hosts, stopped, nil
}
