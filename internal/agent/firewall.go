package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"nubo/internal/eni"
	"nubo/internal/instance"
	"nubo/internal/network"
	"nubo/internal/resource"
	"nubo/internal/secgroup"
	"nubo/internal/store"
)

// The agent keeps each VPC router's firewall as the security group records
// say: a change to a group, or an instance coming, going, or changing its
// groups, queues the VPC's key (fwKey), and syncFirewall rebuilds the
// VPC's firewall from the store (the driver applies only the difference).
// A booting instance's firewall is set before it starts.

const fwPrefix = "fw:"

// fwKey is the queue key of a VPC's firewall.
func fwKey(account, region, vpcID string) string {
	return fwPrefix + account + "/" + region + "/" + vpcID
}

func parseFWKey(k string) (account, region, vpcID string, ok bool) {
	rest, ok := strings.CutPrefix(k, fwPrefix)
	if !ok {
		return "", "", "", false
	}
	f := strings.Split(rest, "/")
	if len(f) != 3 {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// firewallEvent queues the firewall of the VPC a changed record belongs
// to: a security group's, or an instance's. Deleted groups need nothing
// (a group in use cannot be deleted).
func (a *Agent) firewallEvent(key string, value []byte) {
	// /nubo/v1/res/<account>/<region>/<kind>/<id>
	f := strings.Split(strings.TrimPrefix(key, store.Root+"res/"), "/")
	var rec struct {
		VPCID string `json:"vpcId"`
	}
	if len(f) != 4 || len(value) == 0 || json.Unmarshal(value, &rec) != nil || rec.VPCID == "" {
		return
	}
	k := fwKey(f[0], f[1], rec.VPCID)
	a.mu.Lock()
	ports := a.firewalls[k]
	a.mu.Unlock()
	// A group matters where its VPC has ports; an instance also where it
	// is about to have one.
	if ports || f[2] == resource.Instance.Name || f[2] == resource.NetworkInterface.Name {
		a.queue.add(k)
	}
}

// syncFirewall sets the VPC's firewall: every interface of this host's
// instances in the VPC, filtered by its groups, with rules naming groups
// expanded to their members' private addresses.
func (a *Agent) syncFirewall(ctx context.Context, account, region, vpcID string) error {
	key := fwKey(account, region, vpcID)
	// Syncs of one VPC run one at a time; one that began after this call
	// arrived read the store later than this call would, so it did the
	// work for both (fifty boots at once wait for a few syncs, not fifty).
	arrived := a.fwSeq.Add(1)
	lock := a.fwLock(key)
	lock.Lock()
	defer lock.Unlock()
	a.mu.Lock()
	covered := a.fwDone[key] > arrived
	a.mu.Unlock()
	if covered {
		return nil
	}
	began := a.fwSeq.Add(1)
	sc := resource.Scope{Account: account, Region: region}
	fw, err := a.firewall(ctx, sc, vpcID)
	if err != nil {
		return err
	}
	err = a.Network.SetFirewall(ctx, vpcID, fw)
	if errors.Is(err, network.ErrNotFound) {
		// No router here yet: no instance of the VPC has booted on this
		// host. A boot makes the router, then sets the firewall itself.
		return nil
	}
	if err != nil {
		return fmt.Errorf("firewall of %s: %w", vpcID, err)
	}
	a.mu.Lock()
	if a.firewalls == nil {
		a.firewalls = map[string]bool{}
	}
	a.firewalls[key] = len(fw.Ports) > 0
	if a.fwDone == nil {
		a.fwDone = map[string]int64{}
	}
	a.fwDone[key] = began
	a.mu.Unlock()
	return nil
}

func (a *Agent) fwLock(key string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fwLocks == nil {
		a.fwLocks = map[string]*sync.Mutex{}
	}
	l := a.fwLocks[key]
	if l == nil {
		l = &sync.Mutex{}
		a.fwLocks[key] = l
	}
	return l
}

// firewall builds a VPC's firewall from the store.
func (a *Agent) firewall(ctx context.Context, sc resource.Scope, vpcID string) (network.Firewall, error) {
	var fw network.Firewall
	groups := map[string]secgroup.Group{}
	var defaultGroup string
	prefix := resource.Prefix(sc, resource.SecurityGroup)
	kvs, err := a.Store.List(ctx, prefix)
	if err != nil {
		return fw, err
	}
	all, err := a.groups.list(kvs, prefix)
	if err != nil {
		return fw, err
	}
	for _, g := range all {
		if g.VPCID == vpcID {
			groups[g.ID] = g
			if g.Name == secgroup.DefaultName {
				defaultGroup = g.ID
			}
		}
	}
	prefix = resource.Prefix(sc, resource.Instance)
	if kvs, err = a.Store.List(ctx, prefix); err != nil {
		return fw, err
	}
	instances, err := a.instances.list(kvs, prefix)
	if err != nil {
		return fw, err
	}
	members := map[string][]netip.Addr{} // group → private addresses
	used := map[string]bool{}
	for _, in := range instances {
		ip, err := netip.ParseAddr(in.PrivateIP)
		if in.VPCID != vpcID || in.State == instance.Terminated || err != nil {
			continue
		}
		ids := in.SecurityGroups
		if len(ids) == 0 { // launched before nubo had security groups
			if defaultGroup == "" && a.VPCs != nil {
				g, _, err := a.VPCs.DefaultSecurityGroup(ctx, sc.Account, vpcID) // made now if its VPC predates them
				if err != nil {
					return fw, fmt.Errorf("default security group of %s: %w", vpcID, err)
				}
				groups[g.ID], defaultGroup = g, g.ID
			}
			ids = []string{defaultGroup}
		}
		var mine []string
		for _, id := range ids {
			if _, ok := groups[id]; ok {
				if in.NetworkInterfaceID == "" { // else its interface's addresses count, below
					members[id] = append(members[id], ip)
				}
				mine = append(mine, id)
			}
		}
		if in.MachineName() != a.Host || len(mine) == 0 || !hasNetwork(in) {
			continue
		}
		if len(mine) > network.MaxGroupsPerPort {
			mine = mine[:network.MaxGroupsPerPort]
		}
		fw.Ports = append(fw.Ports, network.Port{InstanceID: in.ID, Device: 0, Groups: mine})
		for _, id := range mine {
			used[id] = true
		}
	}
	// Interfaces: every address of one counts in its groups; those at
	// device index 1 and up of this host's instances are ports.
	prefix = resource.Prefix(sc, eni.Kind)
	if kvs, err = a.Store.List(ctx, prefix); err != nil {
		return fw, err
	}
	enis, err := a.enis.list(kvs, prefix)
	if err != nil {
		return fw, err
	}
	byID := make(map[string]instance.Instance, len(instances))
	for _, in := range instances {
		byID[in.ID] = in
	}
	for _, n := range enis {
		if n.VPCID != vpcID {
			continue
		}
		var mine []string
		for _, id := range n.Groups {
			if _, ok := groups[id]; !ok {
				continue
			}
			mine = append(mine, id)
			for _, p := range n.PrivateIPs {
				if ip, err := netip.ParseAddr(p.Address); err == nil {
					members[id] = append(members[id], ip)
				}
			}
		}
		att := n.Attachment
		if att == nil || att.DeviceIndex == 0 || len(mine) == 0 {
			continue
		}
		if in, ok := byID[att.InstanceID]; !ok || in.MachineName() != a.Host || !hasNetwork(in) {
			continue
		}
		fw.Ports = append(fw.Ports, network.Port{InstanceID: att.InstanceID, Device: att.DeviceIndex, Groups: mine[:min(len(mine), network.MaxGroupsPerPort)]})
		for _, id := range mine {
			used[id] = true
		}
	}
	for id := range used {
		g := groups[id]
		sg := network.SecurityGroup{ID: id}
		for _, r := range g.Rules {
			rules := expandRule(r, members)
			if r.Egress {
				sg.Egress = append(sg.Egress, rules...)
			} else {
				sg.Ingress = append(sg.Ingress, rules...)
			}
		}
		fw.Groups = append(fw.Groups, sg)
	}
	return fw, nil
}

// hasNetwork: the instance is, or is about to be, attached on its host.
func hasNetwork(in instance.Instance) bool {
	switch in.State {
	case instance.Pending, instance.Running, instance.Stopping, instance.ShuttingDown:
		return true
	}
	return false
}

// expandRule turns a rule into the data plane's: a CIDR as it is, a group
// into one rule per member address; IPv6 peers match nothing here (the
// data plane has no IPv6).
func expandRule(r secgroup.Rule, members map[string][]netip.Addr) []network.FirewallRule {
	base := network.FirewallRule{Protocol: r.ProtocolNumber(), FromPort: r.FromPort, ToPort: r.ToPort}
	switch {
	case r.CIDRv4 != "":
		p, err := netip.ParsePrefix(r.CIDRv4)
		if err != nil {
			return nil
		}
		base.Peer = p.Masked()
		return []network.FirewallRule{base}
	case r.GroupID != "":
		var out []network.FirewallRule
		for _, ip := range members[r.GroupID] {
			rr := base
			rr.Peer = netip.PrefixFrom(ip, 32)
			out = append(out, rr)
		}
		return out
	}
	return nil
}
