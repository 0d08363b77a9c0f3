// Package topology is where instances can run: hosts in racks in
// availability zones, what each offers, what each has handed out, and
// whether it is up.
//
// A host is a scheduling unit, not necessarily a machine: the agent of one
// machine serves the hosts whose Machine names it. On one machine, nubo
// serves a layout of virtual hosts (by default 8 racks of 2 hosts in every
// zone), so that placement rules have real racks to work with; on several
// machines, each machine's agent serves its own.
//
// Keys:
//
//	/nubo/v1/hosts/<host-id>   Host: zone, rack, capacity, failure
//	/nubo/v1/alloc/<host-id>   Allocation: the instances holding capacity
//	/nubo/v1/live/<machine>    the machine's agent is up (an etcd lease)
package topology

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"nubo/internal/store"
)

// Host is one place instances run.
type Host struct {
	ID        string `json:"id"` // h- and 17 hex digits, as EC2's host IDs
	Machine   string `json:"machine"`
	Region    string `json:"region"`
	Zone      string `json:"zone"`
	Rack      string `json:"rack"` // named within its zone
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int64  `json:"memoryMiB"`
	Slots     int    `json:"slots,omitempty"` // most instances at once; 0 = no limit
	// Failed: an operator declared the host's hardware lost (nubo
	// topology fail); it takes no instances until repaired.
	Failed *Failure `json:"failed,omitempty"`
	// Retired: no longer in its machine's layout; it takes no instances.
	Retired bool `json:"retired,omitempty"`
}

// Failure is why and since when a host is down.
type Failure struct {
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Keys of the records.
const (
	hostsPrefix = store.Root + "hosts/"
	allocPrefix = store.Root + "alloc/"
	livePrefix  = store.Root + "live/"
)

// HostKey is where host id's record lives.
func HostKey(id string) string { return hostsPrefix + id }

// AllocationKey is where host id's allocation lives.
func AllocationKey(id string) string { return allocPrefix + id }

// LiveKey is the key machine's agent keeps alive.
func LiveKey(machine string) string { return livePrefix + machine }

// Layout is the hosts one machine serves: in each zone, Racks racks of
// HostsPerRack hosts, each offering VCPUs, MemoryMiB and Slots.
type Layout struct {
	Zones        []string
	Racks        int
	HostsPerRack int
	VCPUs        int
	MemoryMiB    int64
	Slots        int
}

// Hosts are the layout's hosts for machine in region, with stable IDs.
func (l Layout) Hosts(region, machine string) []Host {
	var out []Host
	for _, z := range l.Zones {
		for r := 1; r <= l.Racks; r++ {
			rack := fmt.Sprintf("r%02d", r)
			for h := 1; h <= l.HostsPerRack; h++ {
				out = append(out, Host{
					ID:      hostID(region, z, rack, h, machine),
					Machine: machine, Region: region, Zone: z, Rack: rack,
					VCPUs: l.VCPUs, MemoryMiB: l.MemoryMiB, Slots: l.Slots,
				})
			}
		}
	}
	return out
}

// hostID is the same for the same place on the same machine, so a restart
// with the same layout finds its hosts (and their instances) again.
func hostID(region, zone, rack string, n int, machine string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%s/%d/%s", region, zone, rack, n, machine))
	return "h-" + hex.EncodeToString(sum[:])[:17]
}

// Up reports whether h takes instances, given whether its machine is live.
func (h Host) Up(machineLive bool) bool {
	return machineLive && h.Failed == nil && !h.Retired && h.Zone != ""
}
