package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"nubo/internal/scheduler"
	"nubo/internal/store"
)

// View is the topology at one store revision: what the scheduler decides
// from, and what a launch's transaction checks it against.
type View struct {
	Hosts    []Host // by ID
	Alloc    map[string]Allocation
	Live     map[string]bool // machines whose agent is up
	hostRev  map[string]int64
	allocRev map[string]int64 // 0: no allocation record yet
}

// Read reads hosts, allocations and live machines in one transaction.
func Read(ctx context.Context, st *store.Store) (View, error) {
	resp, err := st.Client().Txn(ctx).Then(
		clientv3.OpGet(hostsPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(allocPrefix, clientv3.WithPrefix()),
		clientv3.OpGet(livePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return View{}, fmt.Errorf("reading the topology: %w", err)
	}
	v := View{Alloc: map[string]Allocation{}, Live: map[string]bool{}, hostRev: map[string]int64{}, allocRev: map[string]int64{}}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var h Host
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			return View{}, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		if h.ID == "" {
			continue // a host record from before topologies: no zone, no rack
		}
		v.Hosts = append(v.Hosts, h)
		v.hostRev[h.ID] = kv.ModRevision
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var a Allocation
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			return View{}, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		id := strings.TrimPrefix(string(kv.Key), allocPrefix)
		v.Alloc[id] = a
		v.allocRev[id] = kv.ModRevision
	}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		v.Live[strings.TrimPrefix(string(kv.Key), livePrefix)] = true
	}
	sort.Slice(v.Hosts, func(i, j int) bool { return v.Hosts[i].ID < v.Hosts[j].ID })
	return v, nil
}

// Host returns host id's record.
func (v View) Host(id string) (Host, bool) {
	i := sort.Search(len(v.Hosts), func(i int) bool { return v.Hosts[i].ID >= id })
	if i < len(v.Hosts) && v.Hosts[i].ID == id {
		return v.Hosts[i], true
	}
	return Host{}, false
}

// Scheduling is the scheduler's snapshot of the hosts keep accepts (all
// when nil), leaving out instance skip (one being re-placed).
func (v View) Scheduling(keep func(Host) bool, skip string) scheduler.Snapshot {
	var snap scheduler.Snapshot
	for _, h := range v.Hosts {
		if keep != nil && !keep(h) {
			continue
		}
		snap.Hosts = append(snap.Hosts, scheduler.Host{
			Name: h.ID, Zone: h.Zone, Rack: h.Rack, VCPUs: h.VCPUs, MemoryMiB: h.MemoryMiB, Slots: h.Slots,
			Live: h.Up(v.Live[h.Machine]),
		})
		for id, u := range v.Alloc[h.ID].Instances {
			if id == skip {
				continue
			}
			snap.Instances = append(snap.Instances, scheduler.Instance{
				ID: id, Host: h.ID, VCPUs: u.VCPUs, MemoryMiB: u.MemoryMiB,
				Group: u.Group, Partition: u.Partition, Account: u.Account, Dedicated: u.Dedicated,
			})
		}
	}
	return snap
}

// Take is the writes that hand host[i] to instance ids[i] with usage
// use[i]: each touched allocation written only if unchanged since Read, and
// each touched host checked unchanged (not failed meanwhile). Instances
// already holding a share on another host are not moved off it here.
func (v View) Take(ids, hosts []string, use []Usage) []store.Op {
	touched := map[string]Allocation{}
	var order []string
	for i, h := range hosts {
		a, ok := touched[h]
		if !ok {
			a = Allocation{Instances: map[string]Usage{}}
			for id, u := range v.Alloc[h].Instances {
				a.Instances[id] = u
			}
			order = append(order, h)
		}
		a.Instances[ids[i]] = use[i]
		touched[h] = a
	}
	var ops []store.Op
	for _, h := range order {
		ops = append(ops,
			store.Op{Key: AllocationKey(h), Value: touched[h], ModRev: v.allocRev[h]},
			store.Op{Key: HostKey(h), ModRev: v.hostRev[h], Check: true})
	}
	return ops
}

// Drop is the write that takes instance id off host's allocation (false
// when it holds nothing there), checked like Take's.
func (v View) Drop(host, id string) (store.Op, bool) {
	if _, ok := v.Alloc[host].Instances[id]; !ok {
		return store.Op{}, false
	}
	a := Allocation{Instances: map[string]Usage{}}
	for x, u := range v.Alloc[host].Instances {
		if x != id {
			a.Instances[x] = u
		}
	}
	return store.Op{Key: AllocationKey(host), Value: a, ModRev: v.allocRev[host]}, true
}
